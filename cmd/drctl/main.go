package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/internal/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes drctl with args and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil {
		// cobra reports an unknown subcommand of the root and a missing required
		// flag as plain errors.
		if msg := err.Error(); strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "required flag") {
			err = usageErr(err)
		}
		fmt.Fprintln(stderr, "drctl:", err)
	}
	return exitCode(err)
}

// globals are the persistent flags every command has.
type globals struct {
	configPath string
	json       bool
	logLevel   string
	stdout     io.Writer
	stderr     io.Writer
}

// loadConfig loads the config named by --config, $DRKIT_CONFIG or ./drkit.yaml.
func (g *globals) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(config.Resolve(g.configPath))
	if err != nil {
		return nil, usageErr(err)
	}
	return cfg, nil
}

func regionNames(regions []config.Region) string {
	names := make([]string, len(regions))
	for i, r := range regions {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}

// log returns the logger for library progress messages: stderr, text, at
// --log-level (default warn; an unknown level is warn too: the flag is
// checked before any command runs).
func (g *globals) log() *slog.Logger {
	var level slog.Level
	if level.UnmarshalText([]byte(g.logLevel)) != nil {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}

// printJSON writes v as indented JSON to stdout.
func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "drctl",
		Short: "drkit's operator CLI: status, backups, restore and verify across regions",
		Long: `drctl inspects and restores databases from drkit's regional stores.
It needs no running drd: every region's store describes itself.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "config file (default $"+config.EnvFile+", else ./"+config.DefaultFile+")")
	pf.BoolVar(&g.json, "json", false, "print machine-readable JSON")
	pf.StringVar(&g.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		var level slog.Level
		if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
			return usageErr(fmt.Errorf("--log-level %q: debug, info, warn or error", g.logLevel))
		}
		return nil
	}
	root.AddCommand(newVersionCmd(g), newConfigCmd(g), newStorageCmd(g),
		newBackupCmd(g), newBackupsCmd(g), newRestoreCmd(g), newWALFetchCmd(g), newWALPushCmd(g),
		newVerifyCmd(g), newStatusCmd(g), newPruneCmd(g), newCopyCmd(g), newSchedulesCmd(g),
		newImagesCmd(g), newSnapshotsCmd(g), newReplicaCmd(g), newPromoteCmd(g), newDrillCmd(g), newDrillsCmd(g))
	return root
}

// printList prints a list as JSON, an empty one as [] rather than null.
func printList[T any](g *globals, list []T) error {
	if list == nil {
		list = []T{}
	}
	return g.printJSON(list)
}
