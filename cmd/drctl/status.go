package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/api"
	"github.com/drkit/drkit/internal/engine"
)

func newStatusCmd(g *globals) *cobra.Command {
	var only, source, drdURL string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Per cluster and region: newest durable WAL, lag to the primary, last backup",
		Long: `status asks a running drd (drd.listen; token from $DRKIT_API_TOKEN or
drd.api.tokens_file) for each region's log shipping and each replica's lag and
sync state. When drd is not reachable (or --source stores), it reads every
region's store instead and asks the primary for its current WAL position; an
unreachable primary leaves the lag out. --json prints the stores' rows unless
--source drd is given, so a script gets one shape whether drd runs or not.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if source == "auto" && g.json {
				source = "stores"
			}
			switch source {
			case "auto", "drd":
				var st api.Status
				c := newDrdClient(cfg)
				if drdURL != "" {
					c.base = strings.TrimSuffix(drdURL, "/")
				}
				err := c.get(cmd.Context(), "/api/v1/status", &st)
				if err == nil {
					return printDrdStatus(g, st, only)
				}
				if source == "drd" {
					return err
				}
				fmt.Fprintf(g.stderr, "drctl: %v; reading the stores instead\n", err)
			case "stores":
			default:
				return usageErr(fmt.Errorf("--source %q: use auto, drd or stores", source))
			}
			var rows []engine.StatusRow
			for _, cl := range cfg.Clusters {
				if only != "" && cl.Name != only {
					continue
				}
				sr, err := engine.Capable[engine.StatusReader](cl.Engine, "report status from the stores")
				if err != nil {
					if only != "" {
						return usageErr(fmt.Errorf("cluster %s: %w", cl.Name, err))
					}
					continue
				}
				rows = append(rows, sr.Status(cmd.Context(), engine.Env{Config: cfg, Cluster: cl, Log: g.log()})...)
			}
			if only != "" && len(rows) == 0 {
				return usageErr(fmt.Errorf("cluster %q is not in %s", only, cfg.Path))
			}
			if g.json {
				values := make([]any, len(rows))
				for i, r := range rows {
					values[i] = r.Value
				}
				return printList(g, values)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, strings.Join(engine.StatusColumns, "\t"))
			for _, row := range rows {
				fmt.Fprintln(tw, strings.Join(row.Cells, "\t"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return printSchedules(g.stdout, jobHistories(cmd.Context(), cfg))
		},
	}
	cmd.Flags().StringVar(&only, "cluster", "", "only this cluster")
	cmd.Flags().StringVar(&source, "source", "auto", "auto (drd if reachable, else the stores), drd or stores")
	cmd.Flags().StringVar(&drdURL, "drd", "", "drd's URL (default: from drd.listen)")
	return cmd
}
