package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	goredis "github.com/redis/go-redis/v9"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/redisinfo"
	"github.com/drkit/drkit/internal/regions"
	rdrepl "github.com/drkit/drkit/replication/redis"
	"github.com/drkit/drkit/snapshots"
	rdsnap "github.com/drkit/drkit/snapshots/redis"
	"github.com/drkit/drkit/storage"
)

var (
	_ engine.Shipping     = Engine{}
	_ engine.Scheduling   = Engine{}
	_ engine.Backuper     = Engine{}
	_ engine.BackupLister = Engine{}
	_ engine.Restorer     = Engine{}
	_ engine.Verifier     = Engine{}
	_ engine.StatusReader = Engine{}
	_ engine.Pruner       = Engine{}
)

// NewShipper implements engine.Shipping: the replication stream captured
// as a replica.
func (Engine) NewShipper(cl config.Cluster, all []*storage.Region, log *slog.Logger) engine.Shipper {
	sh := &rdwal.Shipper{Cluster: cl.Name, DSN: cl.DSN, FlushInterval: time.Duration(cl.FlushInterval), Log: log, Required: cl.RequiredRegions,
		SizingCheck: func(ctx context.Context) error { return rdrepl.CheckSizing(ctx, cl.DSN) }}
	for _, r := range all {
		if slices.Contains(cl.ShipTo, r.Name) {
			sh.Regions = append(sh.Regions, r)
		}
	}
	return sh
}

// BackupEngine implements engine.Scheduling.
func (Engine) BackupEngine(cl config.Cluster, regions []*storage.Region, log *slog.Logger) snapshots.Engine {
	return &rdsnap.Engine{Cluster: cl, Regions: regions, Log: log}
}

// Backup implements engine.Backuper: an RDB through the replica handshake.
func (Engine) Backup(ctx context.Context, env engine.Env, regions []*storage.Region) (engine.Output, error) {
	b, err := rdwal.Backup(ctx, env.Cluster.DSN, regions, env.Cluster.Name)
	if err != nil {
		return engine.Output{}, err
	}
	return engine.Output{Value: b, Text: func(w io.Writer) error { _, err := fmt.Fprintln(w, b.ID); return err }}, nil
}

// ListBackups implements engine.BackupLister.
func (Engine) ListBackups(ctx context.Context, env engine.Env, r *storage.Region) (engine.Output, []snapshots.Damaged, error) {
	list, damaged, err := rdwal.ListBases(ctx, r.Pipeline, env.Cluster.Name)
	if err != nil {
		return engine.Output{}, damaged, err
	}
	if list == nil {
		list = []rdwal.Base{}
	}
	return engine.Output{Value: list, Text: func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tREPLID\tOFFSET\tRDB SIZE\tSTORED")
		for _, b := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", b.ID, b.Time.Format(time.RFC3339), b.ReplID, b.Offset, b.RDBSize, b.StoredSize)
		}
		return tw.Flush()
	}}, damaged, nil
}

// RestoreFlags implements engine.Restorer.
func (Engine) RestoreFlags() []string { return []string{"target-dsn", "target-dir", "replay-listen"} }

// Restore implements engine.Restorer: into an empty running Redis
// (--target-dsn; drctl serves it as its primary, see snapshots/redis), or
// into a folder redis-server loads (--target-dir: RDB + AOF).
func (e Engine) Restore(ctx context.Context, env engine.Env, req engine.RestoreRequest) (engine.Output, error) {
	if err := engine.CheckFlags(Name, req.Flags, e.RestoreFlags()); err != nil {
		return engine.Output{}, err
	}
	dsn, dir := req.Flags["target-dsn"], req.Flags["target-dir"]
	if (dsn == "") == (dir == "") {
		return engine.Output{}, engine.Usage(errors.New("give --target-dsn (an empty Redis, redis://host:6379) or --target-dir (a new folder for redis-server), one of them: engine redis restores into either"))
	}
	if dir != "" && req.Flags["replay-listen"] != "" {
		return engine.Output{}, engine.Usage(errors.New("--replay-listen goes with --target-dsn"))
	}
	o := rdsnap.RestoreOptions{Cluster: env.Cluster.Name, Region: req.Region, TargetDSN: dsn, BackupID: req.BackupID,
		AcceptGap: req.AcceptGap, Listen: req.Flags["replay-listen"], Log: env.Log, Phase: env.Phase}
	env.Enter("fetch base")
	if req.TargetTime != nil {
		o.Stop = *req.TargetTime
	}
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return engine.Output{}, engine.Usage(fmt.Errorf("--target-dir: %w", err))
		}
		res, err := rdsnap.RestoreDir(ctx, o, abs)
		if err != nil {
			return engine.Output{}, err
		}
		return engine.Output{Value: res, Text: func(w io.Writer) error {
			printRestored(w, res.RestoreResult, req.Region.Name)
			_, err := fmt.Fprintf(w, "wrote %s; start it with:\n  %s\n", res.Dir, res.Command)
			return err
		}}, nil
	}
	res, err := rdsnap.Restore(ctx, o)
	if err != nil {
		return engine.Output{}, err
	}
	return engine.Output{Value: res, Text: func(w io.Writer) error {
		printRestored(w, res, req.Region.Name)
		_, err := fmt.Fprintf(w, "the target holds %d key(s)\n", res.Keys)
		return err
	}}, nil
}

func printRestored(w io.Writer, res rdsnap.RestoreResult, region string) {
	fmt.Fprintf(w, "restored backup %s (replid %s, offset %d) from region %s and replayed %d command(s) to offset %d\n",
		res.Backup.ID, res.Backup.ReplID, res.Backup.Offset, region, res.Commands, res.Offset)
	if res.Reach.Gap != "" {
		fmt.Fprintf(w, "WARNING: restored up to a gap in the stream (--accept-gap): %s\n", res.Reach.Gap)
	}
}

// Verify implements engine.Verifier.
func (Engine) Verify(ctx context.Context, env engine.Env, r *storage.Region, all bool) (engine.Output, int, error) {
	rep, err := rdsnap.Verify(ctx, r.Pipeline, env.Cluster.Name, all, env.Progress)
	if err != nil {
		return engine.Output{}, 0, err
	}
	return engine.Output{Value: rep, Text: func(w io.Writer) error {
		fmt.Fprintf(w, "cluster %s in region %s: %d stream chunk(s) in %d history(ies); %d backup(s)\n", rep.Cluster, rep.Region, rep.Chunks, len(rep.Histories), len(rep.Backups))
		for _, p := range rep.Problems {
			fmt.Fprintln(w, "PROBLEM:", p)
		}
		switch {
		case !rep.OK:
		case rep.Checked == "all":
			fmt.Fprintf(w, "OK: every backup rolls forward without a gap; every RDB and stream chunk (%d objects, %d bytes) read and their SHA-256 checked\n", rep.ObjectsRead, rep.BytesRead)
		default:
			fmt.Fprintln(w, "OK: every backup rolls forward without a gap (from the chunks' names); the newest backup's RDB read and its SHA-256 checked; chunks not read: --all-checksums reads everything")
		}
		return nil
	}}, len(rep.Problems), nil
}

// RegionStatus is one region's row of drctl status for a Redis cluster.
type RegionStatus struct {
	Cluster    string    `json:"cluster"`
	Engine     string    `json:"engine"`
	Region     string    `json:"region"`
	ReplID     string    `json:"replid,omitempty"`
	Offset     int64     `json:"durable_offset"`
	LastCommit time.Time `json:"last_command_time,omitzero"`
	LagBytes   *int64    `json:"lag_bytes,omitempty"`
	// LagSeconds is how long ago the region's last command was received
	// while it lacks stream the primary has (0 when it lacks none).
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
	LastBackup string   `json:"last_backup,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// Status implements engine.StatusReader: each region's durable offset and
// time, and the bytes and seconds it lacks of the primary's stream when the
// primary answers.
func (Engine) Status(ctx context.Context, env engine.Env) []engine.StatusRow {
	cl := env.Cluster
	primary, primaryIDs := primaryOffset(ctx, cl.DSN)
	now := time.Now()
	var out []engine.StatusRow
	for _, name := range cl.ShipTo {
		s := RegionStatus{Cluster: cl.Name, Engine: Name, Region: name}
		if r, err := regions.Open(ctx, env.Config, name, storage.RegionOptions{}); err != nil {
			s.Error = err.Error()
		} else {
			regionStatus(ctx, r, &s)
		}
		if primary >= 0 && s.ReplID != "" && slices.Contains(primaryIDs, s.ReplID) && s.Error == "" {
			lag := max(0, primary-s.Offset)
			secs := 0.0
			if lag > keepalives {
				secs = max(0, now.Sub(s.LastCommit).Seconds())
			}
			s.LagBytes, s.LagSeconds = &lag, &secs
		}
		lag, lagS, written, last := "?", "?", "-", s.LastBackup
		if s.LagBytes != nil {
			lag, lagS = strconv.FormatInt(*s.LagBytes, 10), strconv.FormatFloat(*s.LagSeconds, 'f', 1, 64)
		}
		if !s.LastCommit.IsZero() {
			written = s.LastCommit.Format(time.RFC3339)
		}
		if last == "" {
			last = "-"
		}
		out = append(out, engine.StatusRow{Value: s, Cells: []string{s.Cluster, s.Region, "offset " + strconv.FormatInt(s.Offset, 10), written, lag, lagS, last, s.Error}})
	}
	return out
}

func regionStatus(ctx context.Context, r *storage.Region, s *RegionStatus) {
	p, ok, err := (&rdwal.Catalog{Pipeline: r.Pipeline, Cluster: s.Cluster}).End(ctx)
	if err != nil {
		s.Error = err.Error()
		return
	}
	if ok {
		s.ReplID, s.Offset, s.LastCommit = p.ReplID, p.End, time.UnixMilli(p.LastMS).UTC()
	}
	bases, damaged, err := rdwal.ListBases(ctx, r.Pipeline, s.Cluster)
	if err != nil {
		s.Error = err.Error()
		return
	}
	if len(bases) > 0 {
		b := bases[len(bases)-1]
		s.LastBackup = b.ID
		if s.ReplID == "" {
			// No stream stored yet: the region holds the primary's stream to
			// the base's offset.
			s.ReplID, s.Offset, s.LastCommit = b.ReplID, b.Offset, b.Time
		}
	}
	s.Error = snapshots.DamagedNote(damaged)
}

// keepalives is stream a region may lack while it holds every command: drd
// stores no chunk of keepalives alone (the primary's PING, 14 bytes every
// repl-ping-replica-period, and REPLCONF GETACK), so an idle primary is
// ahead of the regions by those until its next write. Status counts no lag
// in seconds for them.
const keepalives = 64

// primaryOffset is the primary's replication offset and the histories it
// continues: its replid and, after a failover, the one before (replid2);
// -1 when it does not answer: status reads the stores, the primary may be
// gone.
func primaryOffset(ctx context.Context, dsn string) (int64, []string) {
	opt, err := goredis.ParseURL(dsn)
	if err != nil {
		return -1, nil
	}
	c := goredis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rep, err := redisinfo.Get(ctx, c, "replication")
	if err != nil {
		return -1, nil
	}
	off, err := strconv.ParseInt(rep["master_repl_offset"], 10, 64)
	if err != nil {
		return -1, nil
	}
	return off, []string{rep["master_replid"], rep["master_replid2"]}
}

// Prune implements engine.Pruner.
func (Engine) Prune(ctx context.Context, env engine.Env, r *storage.Region, dryRun bool) (engine.Output, error) {
	res, err := rdsnap.Prune(ctx, r.Pipeline, env.Cluster.Name, env.Cluster.Retention, time.Now(), dryRun)
	if err != nil {
		return engine.Output{}, err
	}
	return engine.Output{Value: res, Text: func(w io.Writer) error {
		verb := "expired"
		if dryRun {
			verb = "would expire"
		}
		_, err := fmt.Fprintf(w, "region %s: kept %d backup(s); %s %v and %d stream chunk(s)\n", res.Region, len(res.Kept), verb, res.Expired, res.Chunks)
		return err
	}}, nil
}
