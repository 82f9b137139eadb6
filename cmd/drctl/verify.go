package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/internal/engine"
)

func newVerifyCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	var all bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check a region: WAL continuity from every backup, and checksums",
		Long: `verify checks, in one region, that every base backup can be replayed to the
newest WAL without a gap (following timeline switches as PostgreSQL would), from
the objects' names, and reads the newest backup's objects to check their SHA-256.
With --all-checksums it reads every object of every backup and every log object
they need (WAL, or MariaDB binlog chunks), in parallel, and names each bad one.
Exit 0 when everything checked is sound, 1 on any gap, damaged manifest or
checksum failure.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cl, r, err := cf.clusterRegion(cmd.Context(), true)
			if err != nil {
				return err
			}
			v, err := capable[engine.Verifier](cl, "verify")
			if err != nil {
				return err
			}
			env := cf.env(cfg, cl)
			progress, finish := g.countBar("verify", true)
			env.Progress = progress
			out, problems, err := v.Verify(cmd.Context(), env, r, all)
			finish()
			if err != nil {
				return engineErr(err)
			}
			if err := g.output(out); err != nil {
				return err
			}
			if problems > 0 {
				return fmt.Errorf("region %s: %d problem(s) found", r.Name, problems)
			}
			return nil
		},
	}
	cf.addFlags(cmd, "the region (default: the cluster's)")
	cmd.Flags().BoolVar(&all, "all-checksums", false, "read every object of every backup and every log object they need, not only the newest backup")
	return cmd
}
