package main

import (
	"github.com/spf13/cobra"

	"github.com/drkit/drkit/internal/engine"
)

func newPruneCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Apply the cluster's retention: expire old backups and the WAL only they need",
		Long: `prune keeps, in each region (or --region), the backups retention keeps
(retention.full newest and/or those within retention.window, and always the
newest), and deletes the others and the WAL older than the oldest kept backup.
drd runs it after every scheduled backup and every hour.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cl, err := cf.resolve()
			if err != nil {
				return err
			}
			p, err := capable[engine.Pruner](cl, "prune")
			if err != nil {
				return err
			}
			regions := cl.ShipTo
			if cf.region != "" {
				regions = []string{cf.region}
			}
			var all []any
			for _, name := range regions {
				cf.region = name
				r, err := cf.openRegion(cmd.Context(), cfg, cl, false)
				if err != nil {
					return err
				}
				out, err := p.Prune(cmd.Context(), cf.env(cfg, cl), r, dryRun)
				if err != nil {
					return engineErr(err)
				}
				all = append(all, out.Value)
				if !g.json {
					if err := out.Text(g.stdout); err != nil {
						return err
					}
				}
			}
			if g.json {
				return printList(g, all)
			}
			return nil
		},
	}
	cf.addFlags(cmd, "only this region (default: every ship_to region)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be removed")
	return cmd
}
