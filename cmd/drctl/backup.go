package main

import (
	"github.com/spf13/cobra"

	"github.com/drkit/drkit/internal/engine"
)

func newBackupCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Take a base backup now, into every ship_to region; prints its id",
		Long: `backup takes a base backup over the replication protocol and writes it to
every region the cluster ships to. The backup carries the WAL from its start to
its stop, so it is restorable even when drd is not running.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cl, err := cf.resolve()
			if err != nil {
				return err
			}
			b, err := capable[engine.Backuper](cl, "take base backups")
			if err != nil {
				return err
			}
			regions, err := shipToRegions(cmd.Context(), cfg, cl)
			if err != nil {
				return err
			}
			env := cf.env(cfg, cl)
			progress, finish := g.countBar("backup", false)
			env.Progress = progress
			out, err := b.Backup(cmd.Context(), env, regions)
			finish()
			if err != nil {
				return engineErr(err)
			}
			return g.output(out)
		},
	}
	cf.addFlags(cmd, "")
	return cmd
}

func newBackupsCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	cmd := &cobra.Command{
		Use:   "backups",
		Short: "List a region's complete base backups of a cluster",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cl, r, err := cf.clusterRegion(cmd.Context(), false)
			if err != nil {
				return err
			}
			l, err := capable[engine.BackupLister](cl, "list backups")
			if err != nil {
				return err
			}
			out, damaged, err := l.ListBackups(cmd.Context(), cf.env(cfg, cl), r)
			warnDamaged(g, r.Name, damaged)
			if err != nil {
				return engineErr(err)
			}
			return g.output(out)
		},
	}
	cf.addFlags(cmd, "the region (default: the cluster's)")
	return cmd
}
