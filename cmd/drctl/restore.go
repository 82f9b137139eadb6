package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drkit/drkit/internal/engine"
)

// engineRestoreFlags are restore's flags that only some engines take: each
// engine names those it does (engine.Restorer.RestoreFlags) and refuses the
// others by name.
var engineRestoreFlags = []string{"target-dir", "target-lsn", "start", "port", "target-dsn", "target-gtid", "replay-listen", "no-replay"}

func newRestoreCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	var targetTime, backupID, passwordFile string
	var acceptGap bool
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a cluster from one region, to the newest log or a target time/LSN/GTID",
		Long: `restore reads region --to-region only: it picks the newest base backup that
ended before the target, downloads and verifies it into --target-dir, and writes
recovery settings so that PostgreSQL replays WAL from that region (drctl
wal-fetch) up to the target, or to the newest WAL the region holds (its last
partial segment included). With --start it starts PostgreSQL as the folder's
owner and waits until recovery has ended.

The folder must be new or empty. A new folder gets its parent's owner, so make
the parent belong to the postgres user. The config file and drctl must be
readable by that user: PostgreSQL runs drctl wal-fetch itself.

MySQL/MariaDB: restore loads the newest snapshot before the target into the
empty server --target-dsn (in parallel), then replays the region's binlog up to
--target-time or --target-gtid (default: all of it) through the server's own
replication applier: drctl serves the binlog as a primary would, and the
target connects back to it (--replay-listen). gtid_slave_pos and, on a
binlogging target, gtid_binlog_state continue the source's GTID history.

Flags marked with an engine are taken by that engine only; another refuses them
by name.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cl, err := cf.resolve()
			if err != nil {
				return err
			}
			rs, err := capable[engine.Restorer](cl, "restore")
			if err != nil {
				return err
			}
			req := engine.RestoreRequest{BackupID: backupID, AcceptGap: acceptGap, Flags: map[string]string{}}
			cmd.Flags().Visit(func(f *pflag.Flag) {
				for _, name := range engineRestoreFlags {
					if f.Name == name {
						req.Flags[name] = f.Value.String()
					}
				}
			})
			if err := withTargetPassword(cl.Engine, req.Flags, passwordFile); err != nil {
				return err
			}
			if targetTime != "" {
				t, err := parseTargetTime(targetTime)
				if err != nil {
					return err
				}
				req.TargetTime = &t
			}
			if req.Region, err = cf.openRegion(cmd.Context(), cfg, cl, true); err != nil {
				return err
			}
			env := cf.env(cfg, cl)
			progress, finish := g.countBar("restore", true)
			env.Progress = progress
			out, err := rs.Restore(cmd.Context(), env, req)
			finish()
			warnDamaged(g, req.Region.Name, out.Damaged)
			if err != nil {
				return engineErr(err)
			}
			return g.output(out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cf.cluster, "cluster", "", "the cluster (default: the only one)")
	f.StringVar(&cf.region, "to-region", "", "the region to restore from (default: the cluster's)")
	f.StringVar(&targetTime, "target-time", "", targetTimeHelp)
	f.String("target-lsn", "", "PostgreSQL: recover up to this LSN")
	f.String("target-dir", "", "PostgreSQL: the new data folder; Redis: a new folder for redis-server (RDB + AOF)")
	f.Bool("start", false, "PostgreSQL: start the server and wait until recovery has ended")
	f.Int("port", 0, "PostgreSQL: the port of the restored server (default: the backup's)")
	f.String("target-dsn", "", "MySQL: the empty server to restore into (user@tcp(host:3306)/); Redis: the empty server (redis://host:6379)"+fmt.Sprintf(passwordHelp, "--target-password-file", "MYSQL_PWD (Redis: $REDISCLI_AUTH)"))
	f.StringVar(&passwordFile, "target-password-file", "", "MySQL, Redis: a file holding --target-dsn's password")
	f.String("target-gtid", "", "MySQL: replay up to and including this GTID (0-1-42)")
	f.String("replay-listen", "", "MySQL, Redis: address the target connects back to for the replay (default MySQL: this host's address toward the target, a free port; Redis: 127.0.0.1, a free port)")
	f.Bool("no-replay", false, "MySQL: restore the snapshot only, no binlog")
	f.StringVar(&backupID, "backup", "", "restore this backup (drctl backups lists them) instead of the newest before the target")
	f.BoolVar(&acceptGap, "accept-gap", false, "when the region's log (WAL, binlog) has a gap, restore up to it instead of refusing (the log after it is lost)")
	return cmd
}

// withTargetPassword puts the password of --target-password-file, or of
// the engine's environment variable, into --target-dsn.
func withTargetPassword(engineName string, flags map[string]string, file string) error {
	dsn, ok := flags["target-dsn"]
	if !ok {
		if file != "" {
			return usageErr(errors.New("--target-password-file goes with --target-dsn"))
		}
		return nil
	}
	dsn, err := withPassword(engineName, dsn, file)
	if err != nil {
		return err
	}
	flags["target-dsn"] = dsn
	return nil
}
