package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/drkit/drkit/api"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
	"github.com/drkit/drkit/storage"
)

// clusterFlags resolves --cluster (default: the only cluster in the config).
type clusterFlags struct {
	g       *globals
	cluster string
	region  string
	// engines the command supports (default: postgres only).
	engines []string
}

// bothEngines is what most commands support.
var bothEngines = []string{"postgres", "mysql"}

func (cf *clusterFlags) resolve() (*config.Config, config.Cluster, error) {
	cfg, err := cf.g.loadConfig()
	if err != nil {
		return nil, config.Cluster{}, err
	}
	if cf.cluster == "" {
		if len(cfg.Clusters) != 1 {
			return nil, config.Cluster{}, usageErr(fmt.Errorf("--cluster is needed: %s has %d clusters", cfg.Path, len(cfg.Clusters)))
		}
		cf.cluster = cfg.Clusters[0].Name
	}
	cl, ok := cfg.Cluster(cf.cluster)
	if !ok {
		return nil, cl, usageErr(fmt.Errorf("cluster %q is not in %s", cf.cluster, cfg.Path))
	}
	engines := cf.engines
	if len(engines) == 0 {
		engines = []string{"postgres"}
	}
	if !slices.Contains(engines, cl.Engine) {
		return nil, cl, usageErr(fmt.Errorf("cluster %s is %s: this command supports %s clusters only", cl.Name, cl.Engine, strings.Join(engines, " and ")))
	}
	return cfg, cl, nil
}

// addFlags declares --cluster and, when regionHelp is set, --region.
func (cf *clusterFlags) addFlags(cmd *cobra.Command, regionHelp string) {
	cmd.Flags().StringVar(&cf.cluster, "cluster", "", "the cluster (default: the only one)")
	if regionHelp != "" {
		cmd.Flags().StringVar(&cf.region, "region", "", regionHelp)
	}
}

// clusterRegion resolves the cluster and opens its region (--region, default the
// cluster's own).
func (cf *clusterFlags) clusterRegion(ctx context.Context, withIdentity bool) (*config.Config, config.Cluster, *storage.Region, error) {
	cfg, cl, err := cf.resolve()
	if err != nil {
		return nil, cl, nil, err
	}
	r, err := cf.openRegion(ctx, cfg, cl, withIdentity)
	return cfg, cl, r, err
}

// openRegion opens one region named by --region (default: the cluster's own).
func (cf *clusterFlags) openRegion(ctx context.Context, cfg *config.Config, cl config.Cluster, withIdentity bool) (*storage.Region, error) {
	name := cf.region
	if name == "" {
		name = cl.Region
	}
	if _, ok := cfg.Region(name); !ok {
		return nil, usageErr(fmt.Errorf("region %q is not configured in %s; configured: %s", name, cfg.Path, regionNames(cfg.Regions)))
	}
	return storage.OpenRegion(ctx, cfg, name, storage.RegionOptions{WithIdentity: withIdentity})
}

func newBackupCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g, engines: bothEngines}
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
			if cl.Engine == "mysql" {
				return mysqlBackup(cmd, g, cfg, cl)
			}
			regions, err := shipToRegions(cmd.Context(), cfg, cl)
			if err != nil {
				return err
			}
			m, err := pgsnap.Backup(cmd.Context(), pgsnap.BackupOptions{Cluster: cl.Name, DSN: cl.DSN, Regions: regions, Log: g.log()})
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(m)
			}
			_, err = fmt.Fprintln(g.stdout, m.ID)
			return err
		},
	}
	cf.addFlags(cmd, "")
	return cmd
}

func newBackupsCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g, engines: bothEngines}
	cmd := &cobra.Command{
		Use:   "backups",
		Short: "List a region's complete base backups of a cluster",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, cl, r, err := cf.clusterRegion(cmd.Context(), false)
			if err != nil {
				return err
			}
			if cl.Engine == "mysql" {
				return mysqlBackups(g, cmd.Context(), r, cl)
			}
			list, damaged, err := pgsnap.ListBackups(cmd.Context(), r.Pipeline, cl.Name)
			if err != nil {
				return err
			}
			warnDamaged(g, r.Name, damaged)
			if g.json {
				return printList(g, list)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTART\tSTOP\tSTOP LSN\tSIZE\tSTORED")
			for _, m := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", m.ID, m.StartTime.Format(time.RFC3339), m.StopTime.Format(time.RFC3339), m.StopLSN, m.PlainSize, m.StoredSize)
			}
			return tw.Flush()
		},
	}
	cf.addFlags(cmd, "the region (default: the cluster's)")
	return cmd
}

func newRestoreCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g, engines: bothEngines}
	var my mysqlRestoreFlags
	var targetTime, targetLSN, targetDir, backupID string
	var start, acceptGap bool
	var port int
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
binlogging target, gtid_binlog_state continue the source's GTID history.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, cl, err := cf.resolve()
			if err != nil {
				return err
			}
			if cl.Engine == "mysql" {
				if targetDir != "" || targetLSN != "" || start {
					return usageErr(errors.New("--target-dir, --target-lsn and --start are for PostgreSQL clusters; a MySQL cluster restores into --target-dsn"))
				}
				my.targetTime, my.backupID, my.acceptGap = targetTime, backupID, acceptGap
				return mysqlRestore(cmd, g, cf, cfg, cl, my)
			}
			if my.targetDSN != "" || my.targetGTID != "" {
				return usageErr(errors.New("--target-dsn and --target-gtid are for MySQL clusters; PostgreSQL restores into --target-dir"))
			}
			if targetDir == "" {
				return usageErr(errors.New("--target-dir is required"))
			}
			if targetTime != "" && targetLSN != "" {
				return usageErr(errors.New("give --target-time or --target-lsn, not both"))
			}
			o := pgsnap.RestoreOptions{Cluster: cl.Name, Port: port, Log: g.log(), BackupID: backupID, AcceptGap: acceptGap}
			if targetTime != "" {
				t, err := parseTargetTime(targetTime)
				if err != nil {
					return err
				}
				o.TargetTime = &t
			}
			if targetLSN != "" {
				l, err := pgwal.ParseLSN(targetLSN)
				if err != nil {
					return usageErr(fmt.Errorf("--target-lsn %q is not an LSN (16/B374D848): %w", targetLSN, err))
				}
				o.TargetLSN = &l
			}
			if o.TargetDir, err = filepath.Abs(targetDir); err != nil {
				return err
			}
			if o.Region, err = cf.openRegion(cmd.Context(), cfg, cl, true); err != nil {
				return err
			}
			if o.RestoreCommand, err = restoreCommand(cfg.Path, cl.Name, o.Region.Name); err != nil {
				return err
			}
			progress, finish := g.countBar("restore", true)
			o.Progress = progress
			res, err := pgsnap.Restore(cmd.Context(), o)
			finish()
			warnDamaged(g, o.Region.Name, res.Skipped)
			if err != nil {
				return restoreErr(err, o.TargetDir, res.TargetDir != "")
			}
			if start {
				bin, err := pgsnap.BinDir(res.Backup.ServerVersion)
				if err == nil {
					err = pgsnap.Start(cmd.Context(), o.TargetDir, bin)
				}
				if err != nil {
					return restoreErr(err, o.TargetDir, true)
				}
			}
			if g.json {
				return g.printJSON(map[string]any{"backup": res.Backup.ID, "target_dir": res.TargetDir, "started": start, "region": o.Region.Name, "reach": res.Reach})
			}
			fmt.Fprintf(g.stdout, "restored backup %s of %s from region %s into %s\n", res.Backup.ID, cl.Name, o.Region.Name, res.TargetDir)
			if res.Reach.Gap != "" {
				fmt.Fprintf(g.stdout, "WARNING: --accept-gap: WAL segment %s is missing in region %s; recovery stops at %s (written %s), and the WAL stored after the gap (to %s) is not replayed\n",
					res.Reach.Gap, o.Region.Name, res.Reach.End, res.Reach.EndTime.UTC().Format(time.RFC3339), res.Reach.Beyond)
			}
			if start {
				fmt.Fprintln(g.stdout, "PostgreSQL is running and recovery has ended")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cf.cluster, "cluster", "", "the cluster (default: the only one)")
	f.StringVar(&cf.region, "to-region", "", "the region to restore from (default: the cluster's)")
	f.StringVar(&targetTime, "target-time", "", targetTimeHelp)
	f.StringVar(&targetLSN, "target-lsn", "", "recover up to this LSN")
	f.StringVar(&targetDir, "target-dir", "", "the new data folder")
	f.StringVar(&my.targetDSN, "target-dsn", "", "MySQL: the empty server to restore into (user@tcp(host:3306)/)"+fmt.Sprintf(passwordHelp, "--target-password-file", "MYSQL_PWD"))
	f.StringVar(&my.passwordFile, "target-password-file", "", "MySQL: a file holding --target-dsn's password")
	f.StringVar(&my.targetGTID, "target-gtid", "", "MySQL: replay up to and including this GTID (0-1-42)")
	f.StringVar(&my.listen, "replay-listen", "", "MySQL: address the target connects back to for the binlog replay (default: this host's address toward the target, a free port)")
	f.BoolVar(&my.noReplay, "no-replay", false, "MySQL: restore the snapshot only, no binlog")
	f.BoolVar(&start, "start", false, "start PostgreSQL and wait until recovery has ended")
	f.StringVar(&backupID, "backup", "", "restore this backup (drctl backups lists them) instead of the newest before the target")
	f.BoolVar(&acceptGap, "accept-gap", false, "when the region's log (WAL, binlog) has a gap, restore up to it instead of refusing (the log after it is lost)")
	f.IntVar(&port, "port", 0, "the port of the restored server (default: the backup's)")
	return cmd
}

// restoreErr gives a failed restore its exit code and, when the folder was
// already written, tells the operator it was left and how to retry.
func restoreErr(err error, dir string, written bool) error {
	switch {
	case errors.Is(err, pgsnap.ErrGap):
		return &exitError{code: exitFailure, err: err}
	case !written:
		return notFoundOr(err)
	}
	return fmt.Errorf("%w\nThe folder %s was left as it is for inspection (its drkit-restore.log holds PostgreSQL's log). To retry, stop any server on it (pg_ctl stop -D %s), remove it, and run drctl restore again, with an earlier --target-time or another --to-region if the WAL does not reach the target", err, dir, dir)
}

// warnDamaged names, on stderr, the backup manifests a region could not read.
func warnDamaged(g *globals, region string, damaged []snapshots.Damaged) {
	for _, d := range damaged {
		fmt.Fprintf(g.stderr, "drctl: region %s: skipped damaged backup manifest %s\n", region, d)
	}
}

// joinNote adds a note to a status row's note.
func joinNote(have, note string) string {
	if have == "" {
		return note
	}
	return have + "; " + note
}

// restoreCommand is the restore_command PostgreSQL will run: this drctl, by
// absolute path, against the one region.
func restoreCommand(cfgPath, cluster, region string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(cfgPath)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s wal-fetch --config %s --cluster %s --region %s %%f %%p", shellArg(exe), shellArg(abs), shellArg(cluster), shellArg(region)), nil
}

// shellArg quotes s for the shell PostgreSQL runs restore_command with (sh -c):
// single quotes, in which nothing is special but the quote itself; and doubles
// % so that PostgreSQL's own %f/%p substitution leaves it alone.
func shellArg(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "%", "%%"), "'", `'\''`) + "'"
}

// Exit codes of wal-fetch, as PostgreSQL reads them: 1 ends recovery normally
// ("no more WAL"); above 125 aborts recovery, which is what any other failure
// must do, or a corrupt object would silently end the restore early.
const (
	exitWALNotFound = 1
	exitWALAbort    = 127
)

func newWALFetchCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	var prefetch int
	cmd := &cobra.Command{
		Use:   "wal-fetch WALFILE DEST",
		Short: "PostgreSQL restore_command: fetch a WAL file from a region",
		Long: `wal-fetch writes WAL file WALFILE (%f) to DEST (%p). On a miss it also fetches
the next --prefetch segments in parallel into pg_wal/.drkit-prefetch.

Exit codes: 0 fetched; 1 the region has no such file (the normal end of
recovery); 127 anything else (corrupt object, store unreachable, bad config):
PostgreSQL then aborts recovery instead of ending it early without that WAL.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			defer func() {
				// A panic must abort recovery too: Go exits 2 on one, which
				// PostgreSQL reads as "no more WAL" and promotes early.
				if p := recover(); p != nil {
					err = &exitError{code: exitWALAbort, err: fmt.Errorf("wal-fetch %s: internal error: %v", args[0], p)}
				}
			}()
			err = walFetch(cmd.Context(), cf, args[0], args[1], prefetch)
			switch {
			case err == nil:
				return nil
			case errors.Is(err, pgwal.ErrWALNotFound):
				return &exitError{code: exitWALNotFound, err: err}
			default:
				return &exitError{code: exitWALAbort, err: err}
			}
		},
	}
	cf.addFlags(cmd, "the region (default: the cluster's)")
	cmd.Flags().IntVar(&prefetch, "prefetch", 8, "segments to fetch ahead in parallel")
	return cmd
}

func walFetch(ctx context.Context, cf *clusterFlags, name, dest string, prefetch int) error {
	_, cl, r, err := cf.clusterRegion(ctx, true)
	if err != nil {
		return err
	}
	return (&pgwal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name}).Fetch(ctx, name, dest, prefetch)
}

func newWALPushCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g}
	cmd := &cobra.Command{
		Use:   "wal-push PATH",
		Short: "PostgreSQL archive_command: store a WAL file in every ship_to region",
		Long: `wal-push stores the WAL file at PATH (%p) in every region the cluster ships to,
and succeeds only when every region in required_regions (default: every
ship_to region) holds it, so PostgreSQL recycles the file only then; a failure
in an optional region is reported on stderr and does not stop archiving. For setups where drd cannot use a replication connection.
PostgreSQL runs it as its own user: that user must be able to read the config
and write the stores (for file:// regions, own the folders).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, cl, err := cf.resolve()
			if err != nil {
				return err
			}
			if _, err := os.Stat(args[0]); err != nil {
				return usageErr(err)
			}
			var errs []error
			for _, name := range cl.ShipTo {
				r, err := storage.OpenRegion(cmd.Context(), cfg, name, storage.RegionOptions{})
				if err == nil {
					err = (&pgwal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name}).Push(cmd.Context(), args[0])
				}
				switch {
				case err == nil:
				case slices.Contains(cl.RequiredRegions, name):
					errs = append(errs, fmt.Errorf("required region %s: %w", name, err))
				default:
					// An optional region that is down must not stop archiving
					// (pg_wal would fill): it is said, and drd or a copy
					// catches the region up later.
					fmt.Fprintf(g.stderr, "drctl: wal-push %s: optional region %s: %v\n", filepath.Base(args[0]), name, err)
				}
			}
			return errors.Join(errs...)
		},
	}
	cf.addFlags(cmd, "")
	return cmd
}

func newVerifyCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g, engines: bothEngines}
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
			_, cl, r, err := cf.clusterRegion(cmd.Context(), true)
			if err != nil {
				return err
			}
			if cl.Engine == "mysql" {
				return mysqlVerify(g, cmd.Context(), r, cl)
			}
			progress, finish := g.countBar("verify", true)
			rep, err := pgsnap.Verify(cmd.Context(), r.Pipeline, cl.Name, pgsnap.VerifyOptions{All: all, Progress: progress})
			finish()
			if err != nil {
				return notFoundOr(err)
			}
			if g.json {
				if err := g.printJSON(rep); err != nil {
					return err
				}
			} else {
				printVerify(g, rep)
			}
			if !rep.OK {
				return fmt.Errorf("region %s: %d problem(s) found", rep.Region, len(rep.Problems))
			}
			return nil
		},
	}
	cf.addFlags(cmd, "the region (default: the cluster's)")
	cmd.Flags().BoolVar(&all, "all-checksums", false, "read every object of every backup and every log object they need, not only the newest backup")
	return cmd
}

func printVerify(g *globals, rep pgsnap.VerifyReport) {
	fmt.Fprintf(g.stdout, "cluster %s in region %s: timeline %d, newest WAL %s\n", rep.Cluster, rep.Region, rep.Timeline, rep.NewestWAL)
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUP\tFROM SEGMENT\tFOUND\tNOT WHOLE\tCHECKSUMS")
	for _, b := range rep.Backups {
		var notWhole []string
		for _, s := range b.Segments {
			notWhole = append(notWhole, s.Name+" "+string(s.State))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", b.ID, b.StartSegment, b.SegmentsFound, strings.Join(notWhole, ", "), b.Checksums)
	}
	tw.Flush()
	for _, p := range rep.Problems {
		fmt.Fprintln(g.stdout, "PROBLEM:", p)
	}
	if !rep.OK {
		return
	}
	if rep.Checked == "all" {
		fmt.Fprintf(g.stdout, "OK: every backup replays to the newest WAL; every backup object and %d WAL object(s) (%d bytes) read and their SHA-256 checked\n", rep.WALObjectsRead, rep.WALBytesRead)
		return
	}
	fmt.Fprintln(g.stdout, "OK: WAL continuity checked from the listing (WAL objects not read); the newest backup's objects read and their SHA-256 checked. --all-checksums reads everything")
}

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
			var out []any
			for _, cl := range cfg.Clusters {
				if only != "" && cl.Name != only {
					continue
				}
				if cl.Engine != "postgres" && cl.Engine != "mysql" {
					continue
				}
				if cl.Engine == "mysql" {
					for _, name := range cl.ShipTo {
						r, err := storage.OpenRegion(cmd.Context(), cfg, name, storage.RegionOptions{})
						if err != nil {
							out = append(out, mysqlStatus{Cluster: cl.Name, Engine: "mysql", Region: name, Error: err.Error()})
							continue
						}
						out = append(out, mysqlRegionStatus(cmd.Context(), r, cl))
					}
					continue
				}
				primary := primaryLSN(cmd.Context(), cl.DSN)
				for _, name := range cl.ShipTo {
					r, err := storage.OpenRegion(cmd.Context(), cfg, name, storage.RegionOptions{})
					if err != nil {
						out = append(out, pgsnap.RegionStatus{Cluster: cl.Name, Region: name, Error: err.Error()})
						continue
					}
					out = append(out, pgsnap.Status(cmd.Context(), r.Pipeline, cl.Name, primary, time.Now()))
				}
			}
			if only != "" && len(out) == 0 {
				return usageErr(fmt.Errorf("cluster %q is not a PostgreSQL or MySQL cluster in %s", only, cfg.Path))
			}
			if g.json {
				return printList(g, out)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLUSTER\tREGION\tDURABLE LSN\tWRITTEN\tLAG BYTES\tLAG S\tLAST BACKUP\tNOTE")
			for _, row := range out {
				if m, ok := row.(mysqlStatus); ok {
					last := m.LastBackup
					if last == "" {
						last = "-"
					}
					written := "-"
					if !m.LastCommit.IsZero() {
						written = m.LastCommit.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\tGTID %s\t%s\t-\t-\t%s\t%s\n", m.Cluster, m.Region, m.GTIDPos, written, last, m.Error)
					continue
				}
				s := row.(pgsnap.RegionStatus)
				lagB, lagS, last := "?", "?", "-"
				if s.LagBytes != nil {
					lagB, lagS = fmt.Sprint(*s.LagBytes), fmt.Sprintf("%.1f", *s.LagSeconds)
				}
				if s.LastBackup != nil {
					last = s.LastBackup.ID
				}
				written := "-"
				if !s.DurableTime.IsZero() {
					written = s.DurableTime.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Cluster, s.Region, s.DurableLSN, written, lagB, lagS, last, s.Error)
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

// primaryLSN asks the primary for its WAL position, or returns nil.
func primaryLSN(ctx context.Context, dsn string) *pgwal.LSN {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil
	}
	defer conn.Close(context.Background())
	var s string
	q := "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END::text"
	if err := conn.QueryRow(ctx, q).Scan(&s); err != nil {
		return nil
	}
	l, err := pgwal.ParseLSN(s)
	if err != nil {
		return nil
	}
	return &l
}

func newPruneCmd(g *globals) *cobra.Command {
	cf := &clusterFlags{g: g, engines: bothEngines}
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
				if cl.Engine == "mysql" {
					res, err := mysqlPrune(g, cmd.Context(), r, cl, dryRun)
					if err != nil {
						return err
					}
					all = append(all, res)
					continue
				}
				res, err := pgsnap.Prune(cmd.Context(), r.Pipeline, cl.Name, cl.Retention, time.Now(), dryRun)
				if err != nil {
					return err
				}
				all = append(all, res)
				if !g.json {
					verb := "expired"
					if dryRun {
						verb = "would expire"
					}
					fmt.Fprintf(g.stdout, "region %s: kept %d backup(s); %s %v and %d WAL object(s) before %s\n", res.Region, len(res.Kept), verb, res.Expired, res.WALObjects, res.OldestStart)
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
