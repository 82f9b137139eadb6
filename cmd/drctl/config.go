package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration file",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the config and print it with defaults applied and secrets redacted",
		Long: `check loads the config as drd would, expands ${VAR} references, applies
defaults and prints the result with passwords and secret keys redacted.
On any problem it prints each one as file:line and exits 2.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			red := cfg.Redacted()
			if g.json {
				return g.printJSON(red)
			}
			out, err := red.YAML()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "# %s is valid\n%s", cfg.Path, out)
			return err
		},
	})
	return cmd
}
