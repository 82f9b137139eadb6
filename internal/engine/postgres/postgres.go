package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/monitor"
	pgmon "github.com/drkit/drkit/monitor/postgres"
	"github.com/drkit/drkit/replication"
	pgrepl "github.com/drkit/drkit/replication/postgres"
	"github.com/drkit/drkit/snapshots"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
	"github.com/drkit/drkit/storage"
)

// Name is the engine's name in the config.
const Name = "postgres"

// Engine is the PostgreSQL engine.
type Engine struct{}

func init() { engine.Register(Engine{}) }

// Name implements engine.Engine.
func (Engine) Name() string { return Name }

var (
	_ engine.Backuper       = Engine{}
	_ engine.BackupLister   = Engine{}
	_ engine.Restorer       = Engine{}
	_ engine.Verifier       = Engine{}
	_ engine.StatusReader   = Engine{}
	_ engine.Pruner         = Engine{}
	_ engine.Shipping       = Engine{}
	_ engine.Scheduling     = Engine{}
	_ engine.Monitoring     = Engine{}
	_ engine.Passwords      = Engine{}
	_ engine.Archiving      = Engine{}
	_ engine.ReplicaCreator = Engine{}
	_ engine.Promoter       = Engine{}
)

// ReplicaFlags implements engine.ReplicaCreator.
func (Engine) ReplicaFlags() []string { return []string{"data-dir", "from-store"} }

// CreateReplica implements engine.ReplicaCreator: a standby from the
// region's newest backup, replaying its WAL, then streaming from the primary.
func (e Engine) CreateReplica(ctx context.Context, env engine.Env, req engine.ReplicaRequest) (any, error) {
	if err := engine.CheckFlags(Name, req.Flags, e.ReplicaFlags()); err != nil {
		return nil, err
	}
	if req.Flags["data-dir"] == "" {
		return nil, engine.Usage(errors.New("--data-dir is required: engine postgres makes a replica in a new data folder"))
	}
	dir, err := filepath.Abs(req.Flags["data-dir"])
	if err != nil {
		return nil, err
	}
	rc, err := RestoreCommand(env.Drctl, env.Config.Path, env.Cluster.Name, req.Region.Name)
	if err != nil {
		return nil, err
	}
	return pgrepl.Create(ctx, pgrepl.CreateOptions{Cluster: env.Cluster, Name: req.Name, Region: req.Region, DSN: req.DSN, DataDir: dir,
		RestoreCommand: rc, FromStore: req.Flags["from-store"] == "true", Catalog: req.Catalog, Log: env.Log, Progress: env.Progress})
}

// PromoteNeedsStore implements engine.Promoter.
func (Engine) PromoteNeedsStore() bool { return true }

// Promote implements engine.Promoter.
func (Engine) Promote(ctx context.Context, env engine.Env, req engine.PromoteRequest) (replication.PromoteResult, error) {
	return pgrepl.Promote(ctx, pgrepl.PromoteOptions{Cluster: env.Cluster.Name, PrimaryDSN: req.PrimaryDSN, Replica: req.Replica, Region: req.Region, Force: req.Force, Wait: req.Wait, Log: env.Log})
}

// FetchLog implements engine.Archiving (restore_command).
func (Engine) FetchLog(ctx context.Context, env engine.Env, r *storage.Region, name, dest string, prefetch int) error {
	err := (&pgwal.Catalog{Pipeline: r.Pipeline, Cluster: env.Cluster.Name}).Fetch(ctx, name, dest, prefetch)
	if errors.Is(err, pgwal.ErrWALNotFound) {
		return fmt.Errorf("%w: %w", engine.ErrLogNotFound, err)
	}
	return err
}

// PushLog implements engine.Archiving (archive_command).
func (Engine) PushLog(ctx context.Context, env engine.Env, r *storage.Region, path string) error {
	return (&pgwal.Catalog{Pipeline: r.Pipeline, Cluster: env.Cluster.Name}).Push(ctx, path)
}

// Backup implements engine.Backuper.
func (Engine) Backup(ctx context.Context, env engine.Env, regions []*storage.Region) (engine.Output, error) {
	m, err := pgsnap.Backup(ctx, pgsnap.BackupOptions{Cluster: env.Cluster.Name, DSN: env.Cluster.DSN, Regions: regions, Log: env.Log})
	if err != nil {
		return engine.Output{}, err
	}
	return engine.Output{Value: m, Text: func(w io.Writer) error { _, err := fmt.Fprintln(w, m.ID); return err }}, nil
}

// ListBackups implements engine.BackupLister.
func (Engine) ListBackups(ctx context.Context, env engine.Env, r *storage.Region) (engine.Output, []snapshots.Damaged, error) {
	list, damaged, err := pgsnap.ListBackups(ctx, r.Pipeline, env.Cluster.Name)
	if err != nil {
		return engine.Output{}, damaged, err
	}
	if list == nil {
		list = []pgsnap.Manifest{}
	}
	return engine.Output{Value: list, Text: func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTART\tSTOP\tSTOP LSN\tSIZE\tSTORED")
		for _, m := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", m.ID, m.StartTime.Format(time.RFC3339), m.StopTime.Format(time.RFC3339), m.StopLSN, m.PlainSize, m.StoredSize)
		}
		return tw.Flush()
	}}, damaged, nil
}

// RestoreFlags implements engine.Restorer.
func (Engine) RestoreFlags() []string { return []string{"target-dir", "target-lsn", "start", "port"} }

// Restore implements engine.Restorer: a data folder recovered from the
// region's WAL through drctl wal-fetch, started with --start.
func (e Engine) Restore(ctx context.Context, env engine.Env, req engine.RestoreRequest) (engine.Output, error) {
	if err := engine.CheckFlags(Name, req.Flags, e.RestoreFlags()); err != nil {
		return engine.Output{}, err
	}
	f := req.Flags
	if f["target-dir"] == "" {
		return engine.Output{}, engine.Usage(errors.New("--target-dir is required: engine postgres restores into a new data folder"))
	}
	if req.TargetTime != nil && f["target-lsn"] != "" {
		return engine.Output{}, engine.Usage(errors.New("give --target-time or --target-lsn, not both"))
	}
	o := pgsnap.RestoreOptions{Cluster: env.Cluster.Name, Log: env.Log, BackupID: req.BackupID, AcceptGap: req.AcceptGap,
		TargetTime: req.TargetTime, Region: req.Region, Progress: env.Progress}
	if p := f["port"]; p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return engine.Output{}, engine.Usage(fmt.Errorf("--port %q is not a port number", p))
		}
		o.Port = n
	}
	if s := f["target-lsn"]; s != "" {
		l, err := pgwal.ParseLSN(s)
		if err != nil {
			return engine.Output{}, engine.Usage(fmt.Errorf("--target-lsn %q is not an LSN (16/B374D848): %w", s, err))
		}
		o.TargetLSN = &l
	}
	var err error
	if o.TargetDir, err = filepath.Abs(f["target-dir"]); err != nil {
		return engine.Output{}, err
	}
	if o.RestoreCommand, err = RestoreCommand(env.Drctl, env.Config.Path, env.Cluster.Name, req.Region.Name); err != nil {
		return engine.Output{}, err
	}
	env.Enter("fetch base")
	res, err := pgsnap.Restore(ctx, o)
	if err != nil {
		return engine.Output{Damaged: res.Skipped}, restoreErr(err, o.TargetDir, res.TargetDir != "")
	}
	start := f["start"] == "true"
	if start {
		bin, err := pgsnap.BinDir(res.Backup.ServerVersion)
		if err == nil {
			err = pgsnap.Start(ctx, o.TargetDir, bin, pgsnap.StartOptions{})
		}
		if err != nil {
			return engine.Output{Damaged: res.Skipped}, restoreErr(err, o.TargetDir, true)
		}
	}
	region := req.Region.Name
	return engine.Output{
		Value: map[string]any{"backup": res.Backup.ID, "target_dir": res.TargetDir, "started": start, "region": region, "reach": res.Reach},
		Text: func(w io.Writer) error {
			fmt.Fprintf(w, "restored backup %s of %s from region %s into %s\n", res.Backup.ID, env.Cluster.Name, region, res.TargetDir)
			if res.Reach.Gap != "" {
				fmt.Fprintf(w, "WARNING: --accept-gap: WAL segment %s is missing in region %s; recovery stops at %s (written %s), and the WAL stored after the gap (to %s) is not replayed\n",
					res.Reach.Gap, region, res.Reach.End, res.Reach.EndTime.UTC().Format(time.RFC3339), res.Reach.Beyond)
			}
			if start {
				fmt.Fprintln(w, "PostgreSQL is running and recovery has ended")
			}
			return nil
		}, Damaged: res.Skipped}, nil
}

// restoreErr tells the operator, when the folder was already written, that
// it was left and how to retry; that failure exits 1, not "not found".
func restoreErr(err error, dir string, written bool) error {
	if !written || errors.Is(err, snapshots.ErrGap) {
		return err
	}
	return &engine.FailedError{Err: fmt.Errorf("%w\nThe folder %s was left as it is for inspection (its drkit-restore.log holds PostgreSQL's log). To retry, stop any server on it (pg_ctl stop -D %s), remove it, and run drctl restore again, with an earlier --target-time or another --to-region if the WAL does not reach the target", err, dir, dir)}
}

// RestoreCommand is the restore_command a restored folder fetches WAL with:
// drctl's wal-fetch (exe, default this executable), quoted for the shell
// PostgreSQL runs it with.
func RestoreCommand(exe, cfgPath, cluster, region string) (string, error) {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return "", err
		}
	}
	abs, err := filepath.Abs(cfgPath)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s wal-fetch --config %s --cluster %s --region %s %%f %%p", ShellArg(exe), ShellArg(abs), ShellArg(cluster), ShellArg(region)), nil
}

// ShellArg quotes s for the shell PostgreSQL runs restore_command with (sh -c):
// single quotes, in which nothing is special but the quote itself; and doubles
// % so that PostgreSQL's own %f/%p substitution leaves it alone.
func ShellArg(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "%", "%%"), "'", `'\''`) + "'"
}

// Verify implements engine.Verifier.
func (Engine) Verify(ctx context.Context, env engine.Env, r *storage.Region, all bool) (engine.Output, int, error) {
	rep, err := pgsnap.Verify(ctx, r.Pipeline, env.Cluster.Name, pgsnap.VerifyOptions{All: all, Progress: env.Progress})
	if err != nil {
		return engine.Output{}, 0, err
	}
	problems := len(rep.Problems)
	if !rep.OK && problems == 0 {
		problems = 1
	}
	return engine.Output{Value: rep, Text: func(w io.Writer) error { printVerify(w, rep); return nil }}, problems, nil
}

func printVerify(w io.Writer, rep pgsnap.VerifyReport) {
	fmt.Fprintf(w, "cluster %s in region %s: timeline %d, newest WAL %s\n", rep.Cluster, rep.Region, rep.Timeline, rep.NewestWAL)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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
		fmt.Fprintln(w, "PROBLEM:", p)
	}
	if !rep.OK {
		return
	}
	if rep.Checked == "all" {
		fmt.Fprintf(w, "OK: every backup replays to the newest WAL; every backup object and %d WAL object(s) (%d bytes) read and their SHA-256 checked\n", rep.WALObjectsRead, rep.WALBytesRead)
		return
	}
	fmt.Fprintln(w, "OK: WAL continuity checked from the listing (WAL objects not read); the newest backup's objects read and their SHA-256 checked. --all-checksums reads everything")
}

// Status implements engine.StatusReader.
func (Engine) Status(ctx context.Context, env engine.Env) []engine.StatusRow {
	cl := env.Cluster
	primary := primaryLSN(ctx, cl.DSN)
	var rows []engine.StatusRow
	for _, name := range cl.ShipTo {
		var s pgsnap.RegionStatus
		r, err := regions.Open(ctx, env.Config, name, storage.RegionOptions{})
		if err != nil {
			s = pgsnap.RegionStatus{Cluster: cl.Name, Region: name, Error: err.Error()}
		} else {
			s = pgsnap.Status(ctx, r.Pipeline, cl.Name, primary, time.Now())
		}
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
		rows = append(rows, engine.StatusRow{Value: s, Cells: []string{s.Cluster, s.Region, s.DurableLSN, written, lagB, lagS, last, s.Error}})
	}
	return rows
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

// Prune implements engine.Pruner.
func (Engine) Prune(ctx context.Context, env engine.Env, r *storage.Region, dryRun bool) (engine.Output, error) {
	res, err := pgsnap.Prune(ctx, r.Pipeline, env.Cluster.Name, env.Cluster.Retention, time.Now(), dryRun)
	if err != nil {
		return engine.Output{}, err
	}
	return engine.Output{Value: res, Text: func(w io.Writer) error {
		verb := "expired"
		if dryRun {
			verb = "would expire"
		}
		_, err := fmt.Fprintf(w, "region %s: kept %d backup(s); %s %v and %d WAL object(s) before %s\n", res.Region, len(res.Kept), verb, res.Expired, res.WALObjects, res.OldestStart)
		return err
	}}, nil
}

// NewShipper implements engine.Shipping: the WAL streamed from the slot.
func (Engine) NewShipper(cl config.Cluster, regions []*storage.Region, log *slog.Logger) engine.Shipper {
	sh := &pgwal.Shipper{Cluster: cl.Name, DSN: cl.DSN, Slot: cl.Slot, FlushInterval: time.Duration(cl.FlushInterval), Log: log,
		Sync: engine.SyncPolicy(cl)}
	if engine.HeartbeatOn(cl) {
		sh.Heartbeat = pgwal.HeartbeatTable{DSN: cl.HeartbeatDSN(), Table: cl.Monitor.Heartbeat.Table, FlushInterval: time.Duration(cl.Monitor.Heartbeat.FlushInterval)}
	}
	for _, r := range regions {
		if !slices.Contains(cl.ShipTo, r.Name) {
			continue
		}
		sh.Targets = append(sh.Targets, &pgwal.Target{
			Catalog:  &pgwal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name},
			Required: slices.Contains(cl.RequiredRegions, r.Name),
			Sync:     sh.Sync.Includes(r.Name),
		})
	}
	return sh
}

// BackupEngine implements engine.Scheduling.
func (Engine) BackupEngine(cl config.Cluster, regions []*storage.Region, log *slog.Logger) snapshots.Engine {
	return &pgsnap.Engine{Cluster: cl, Regions: regions, Log: log}
}

// Probes implements engine.Monitoring.
func (Engine) Probes(cl config.Cluster, beat bool, primary monitor.Server, replicas []monitor.Server) (monitor.Prober, monitor.Heartbeater, error) {
	table := ""
	if beat {
		table = cl.Monitor.Heartbeat.Table
	}
	p, err := pgmon.NewProber(cl.Name, table, primary, replicas)
	if err != nil || !beat {
		return p, nil, err
	}
	h, err := pgmon.NewHeartbeat(cl.Name, table, cl.HeartbeatDSN())
	return p, h, err
}

// PasswordEnv implements engine.Passwords.
func (Engine) PasswordEnv() string { return "PGPASSWORD" }

// WithPassword implements engine.Passwords (URL and key=value DSNs).
func (Engine) WithPassword(dsn, pw string) (string, error) { return engine.URLPassword(dsn, pw) }
