package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

func newCopyCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	var from, to string
	var workers int
	cmd := &cobra.Command{
		Use:   "copy",
		Short: "Copy a cluster's backups and log from one region to another",
		Long: `copy makes region --to hold what region --from holds of the cluster: its
complete base backups and the WAL/binlog they need, byte for byte (no
decryption, no recompression), each object verified by reading it back. Objects
the target already holds are skipped, so an interrupted copy resumes when run
again; a backup becomes visible in the target only when all of it is there.
Afterwards the target passes drctl verify and restores on its own.

Both regions must encrypt to the same age recipients. The target must not hold
a different history of the cluster (for MySQL: copy into a region before drd
ships to it).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cl, err := cf.resolve()
			if err != nil {
				return err
			}
			if from == "" || to == "" || from == to {
				return usageErr(fmt.Errorf("give two different regions with --from and --to; configured: %s", regionNames(cfg.Regions)))
			}
			layout, err := snapshots.LayoutFor(cl.Engine)
			if err != nil {
				return usageErr(err)
			}
			var regions [2]*storage.Region
			for i, name := range []string{from, to} {
				cf.region = name
				if regions[i], err = cf.openRegion(cmd.Context(), cfg, cl, false); err != nil {
					return err
				}
			}
			var done int64
			bar, finish := g.countBar("copying", true)
			o := snapshots.CopyOptions{Workers: workers, Log: g.log(), OnObject: func(res storage.CopyResult) {
				if !res.Skipped {
					done += res.Size
				}
				if bar != nil {
					bar(done, -1)
				}
			}}
			rep, err := snapshots.CopySet(cmd.Context(), cl.Name, regions[0], regions[1], layout, o)
			finish()
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(rep)
			}
			ids := "none"
			if len(rep.Backups) > 0 {
				ids = strings.Join(rep.Backups, ", ")
			}
			_, err = fmt.Fprintf(g.stdout, "copied %s from %s to %s in %.1fs: backups %s (%d already there), %d log objects; %d objects (%d bytes) copied, %d already there\n",
				cl.Name, from, to, rep.Seconds, ids, rep.BackupsPresent, rep.LogObjects, rep.Copied, rep.Bytes, rep.Skipped)
			if err == nil && len(rep.Incomplete) > 0 {
				_, err = fmt.Fprintf(g.stdout, "not copied, incomplete in %s (running or failed): %s\n", from, strings.Join(rep.Incomplete, ", "))
			}
			return err
		},
	}
	cf.addFlags(cmd, "")
	cmd.Flags().StringVar(&from, "from", "", "the region to copy from")
	cmd.Flags().StringVar(&to, "to", "", "the region to copy to")
	cmd.Flags().IntVar(&workers, "workers", 4, "objects copied at once")
	return cmd
}
