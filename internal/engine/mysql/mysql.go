package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"text/tabwriter"
	"time"

	driver "github.com/go-sql-driver/mysql"

	mywal "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/monitor"
	mymon "github.com/drkit/drkit/monitor/mysql"
	"github.com/drkit/drkit/replication"
	myrepl "github.com/drkit/drkit/replication/mysql"
	"github.com/drkit/drkit/snapshots"
	mysnap "github.com/drkit/drkit/snapshots/mysql"
	"github.com/drkit/drkit/storage"
)

// Name is the engine's name in the config.
const Name = "mysql"

// Engine is the MySQL/MariaDB engine.
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
	_ engine.ReplicaCreator = Engine{}
	_ engine.Promoter       = Engine{}
)

// ReplicaFlags implements engine.ReplicaCreator.
func (Engine) ReplicaFlags() []string { return []string{"replay-listen"} }

// CreateReplica implements engine.ReplicaCreator: the region's snapshot and
// binlog loaded into an empty server, which then replicates with GTID.
func (e Engine) CreateReplica(ctx context.Context, env engine.Env, req engine.ReplicaRequest) (any, error) {
	if err := engine.CheckFlags(Name, req.Flags, e.ReplicaFlags()); err != nil {
		return nil, err
	}
	return myrepl.Create(ctx, myrepl.CreateOptions{Cluster: env.Cluster, Name: req.Name, Region: req.Region, DSN: req.DSN,
		Catalog: req.Catalog, ReplayListen: req.Flags["replay-listen"], Log: env.Log})
}

// PromoteNeedsStore implements engine.Promoter.
func (Engine) PromoteNeedsStore() bool { return true }

// Promote implements engine.Promoter.
func (Engine) Promote(ctx context.Context, env engine.Env, req engine.PromoteRequest) (replication.PromoteResult, error) {
	return myrepl.Promote(ctx, myrepl.PromoteOptions{Cluster: env.Cluster.Name, PrimaryDSN: req.PrimaryDSN, Replica: req.Replica, Region: req.Region, Force: req.Force, Wait: req.Wait, Log: env.Log})
}

// rows adapts a count-only progress report (rows, total unknown).
func rows(p func(done, total int64)) func(int64) {
	if p == nil {
		return nil
	}
	return func(n int64) { p(n, -1) }
}

// Backup implements engine.Backuper: a consistent snapshot, loaded in parallel.
func (Engine) Backup(ctx context.Context, env engine.Env, regions []*storage.Region) (engine.Output, error) {
	o := mysnap.BackupOptions{Cluster: env.Cluster.Name, DSN: env.Cluster.DSN, Regions: regions, Log: env.Log, Progress: rows(env.Progress)}
	m, err := mysnap.Backup(ctx, o)
	if err != nil {
		return engine.Output{}, err
	}
	return engine.Output{Value: m, Text: func(w io.Writer) error { _, err := fmt.Fprintln(w, m.ID); return err }}, nil
}

// ListBackups implements engine.BackupLister.
func (Engine) ListBackups(ctx context.Context, env engine.Env, r *storage.Region) (engine.Output, []snapshots.Damaged, error) {
	list, damaged, err := mysnap.ListBackups(ctx, r.Pipeline, env.Cluster.Name)
	if err != nil {
		return engine.Output{}, damaged, err
	}
	if list == nil {
		list = []mysnap.Manifest{}
	}
	return engine.Output{Value: list, Text: func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSNAPSHOT\tGTID POSITION\tROWS\tSIZE\tSTORED")
		for _, m := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", m.ID, m.SnapshotTime.Format(time.RFC3339), m.GTIDPos, m.Rows, m.PlainSize, m.StoredSize)
		}
		return tw.Flush()
	}}, damaged, nil
}

// RestoreFlags implements engine.Restorer.
func (Engine) RestoreFlags() []string {
	return []string{"target-dsn", "target-gtid", "replay-listen", "no-replay"}
}

// Restore implements engine.Restorer: the snapshot loaded into an empty
// server, then the binlog replayed through the server's own applier.
func (e Engine) Restore(ctx context.Context, env engine.Env, req engine.RestoreRequest) (engine.Output, error) {
	if err := engine.CheckFlags(Name, req.Flags, e.RestoreFlags()); err != nil {
		return engine.Output{}, err
	}
	f := req.Flags
	if f["target-dsn"] == "" {
		return engine.Output{}, engine.Usage(errors.New("--target-dsn is required: engine mysql restores into an empty server (user@tcp(host:3306)/)"))
	}
	if req.TargetTime != nil && f["target-gtid"] != "" {
		return engine.Output{}, engine.Usage(errors.New("give --target-time or --target-gtid, not both"))
	}
	o := mysnap.RestoreOptions{Cluster: env.Cluster.Name, TargetDSN: f["target-dsn"], ReplayListen: f["replay-listen"], NoReplay: f["no-replay"] == "true",
		Log: env.Log, BackupID: req.BackupID, AcceptGap: req.AcceptGap, Region: req.Region, Progress: rows(env.Progress), Phase: env.Phase}
	if req.TargetTime != nil {
		o.Stop.Time = *req.TargetTime
	}
	if s := f["target-gtid"]; s != "" {
		gt, err := mywal.ParseGTID(s)
		if err != nil {
			return engine.Output{}, engine.Usage(fmt.Errorf("--target-gtid: %w", err))
		}
		o.Stop.GTID = &gt
	}
	env.Enter("fetch base")
	res, err := mysnap.Restore(ctx, o)
	if err != nil {
		return engine.Output{}, err
	}
	region := req.Region.Name
	return engine.Output{Value: res, Text: func(w io.Writer) error {
		fmt.Fprintf(w, "restored backup %s of %s from region %s and replayed %d transaction(s); the server is at GTID %s\n",
			res.Backup.ID, env.Cluster.Name, region, res.Replayed, res.GTIDPos)
		if res.Last != nil {
			fmt.Fprintf(w, "last transaction: %s committed at %s\n", res.Last.GTID, res.Last.Time.Format(time.RFC3339))
		}
		if res.Reach != nil && res.Reach.Gap != "" {
			fmt.Fprintf(w, "WARNING: --accept-gap: %s; the replay stopped at %s, and the binlog stored after the gap (to %s) was not replayed\n", res.Reach.Gap, res.Reach.End, res.Reach.Beyond)
		}
		return nil
	}}, nil
}

// VerifyReport is drctl verify's answer for a MySQL cluster.
type VerifyReport struct {
	Cluster string             `json:"cluster"`
	Region  string             `json:"region"`
	Binlog  mywal.VerifyReport `json:"binlog"`
	Backups []string           `json:"backups"`
	// Checked says which snapshots' objects were read: "newest" or "all"
	// (--all-checksums). Every binlog chunk is read either way.
	Checked     string   `json:"checked"`
	ObjectsRead int      `json:"backup_objects_read"`
	BytesRead   int64    `json:"backup_bytes_read"`
	Problems    []string `json:"problems"`
	OK          bool     `json:"ok"`
}

// Verify implements engine.Verifier: every binlog chunk read (checksums,
// transactions, the chain), every backup's GTID position covered by it, and
// the newest backup's objects read and their SHA-256 checked, or every
// backup's with all (--all-checksums).
func (Engine) Verify(ctx context.Context, env engine.Env, r *storage.Region, all bool) (engine.Output, int, error) {
	cl := env.Cluster
	rep := VerifyReport{Cluster: cl.Name, Region: r.Name, Checked: "newest"}
	if all {
		rep.Checked = "all"
	}
	var err error
	if rep.Binlog, err = mywal.Verify(ctx, &mywal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name}, mywal.VerifyOptions{Progress: env.Progress}); err != nil {
		return engine.Output{}, 0, err
	}
	rep.Problems = append(rep.Problems, rep.Binlog.Problems...)
	backups, damaged, err := mysnap.ListBackups(ctx, r.Pipeline, cl.Name)
	if err != nil {
		return engine.Output{}, 0, err
	}
	for _, d := range damaged {
		rep.Problems = append(rep.Problems, "damaged backup manifest "+d.String())
	}
	var objs []storage.Object
	var owner []string // the backup of each object
	for i, b := range backups {
		rep.Backups = append(rep.Backups, b.ID)
		pos, err := mywal.ParsePos(b.GTIDPos)
		if err == nil {
			err = rep.Binlog.Covers(pos)
		}
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s (GTID %s) cannot be rolled forward: %v", b.ID, b.GTIDPos, err))
		}
		if all || i == len(backups)-1 {
			for _, obj := range b.Objects() {
				objs, owner = append(objs, obj), append(owner, b.ID)
			}
		}
	}
	if len(backups) == 0 {
		rep.Problems = append(rep.Problems, "the region holds no complete backup")
	}
	for i, err := range snapshots.ReadObjects(ctx, r.Pipeline, objs, 0, env.Progress) {
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: %v", owner[i], err))
		}
		rep.ObjectsRead++
		rep.BytesRead += objs[i].Size
	}
	if err := ctx.Err(); err != nil {
		return engine.Output{}, 0, err
	}
	rep.OK = len(rep.Problems) == 0
	return engine.Output{Value: rep, Text: func(w io.Writer) error { printVerify(w, rep); return nil }}, len(rep.Problems), nil
}

// printVerify says what was found and, on success, exactly what was read.
func printVerify(w io.Writer, rep VerifyReport) {
	fmt.Fprintf(w, "cluster %s in region %s: %d binlog chunk(s), %d transaction(s), GTID %s .. %s, last commit %s; %d backup(s)\n",
		rep.Cluster, rep.Region, rep.Binlog.Chunks, rep.Binlog.Txns, rep.Binlog.First, rep.Binlog.End, rep.Binlog.LastTime.Format(time.RFC3339), len(rep.Backups))
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "PROBLEM:", p)
	}
	if !rep.OK {
		return
	}
	if rep.Checked == "all" {
		fmt.Fprintf(w, "OK: every backup rolls forward to the newest binlog; every binlog chunk (%d bytes) and every backup's objects (%d, %d bytes) read and their SHA-256 checked\n",
			rep.Binlog.Bytes, rep.ObjectsRead, rep.BytesRead)
		return
	}
	fmt.Fprintf(w, "OK: every backup rolls forward to the newest binlog; every binlog chunk (%d bytes) and the newest backup's objects (%d) read and their SHA-256 checked; older backups' objects not read: --all-checksums reads everything\n",
		rep.Binlog.Bytes, rep.ObjectsRead)
}

// RegionStatus is one region's row of drctl status for a MySQL cluster.
type RegionStatus struct {
	Cluster    string    `json:"cluster"`
	Engine     string    `json:"engine"`
	Region     string    `json:"region"`
	GTIDPos    string    `json:"gtid_pos,omitempty"`
	LastCommit time.Time `json:"last_commit_time,omitzero"`
	LastBackup string    `json:"last_backup,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Status implements engine.StatusReader.
func (Engine) Status(ctx context.Context, env engine.Env) []engine.StatusRow {
	var out []engine.StatusRow
	for _, name := range env.Cluster.ShipTo {
		var s RegionStatus
		r, err := regions.Open(ctx, env.Config, name, storage.RegionOptions{})
		if err != nil {
			s = RegionStatus{Cluster: env.Cluster.Name, Engine: Name, Region: name, Error: err.Error()}
		} else {
			s = regionStatus(ctx, r, env.Cluster)
		}
		last, written := s.LastBackup, "-"
		if last == "" {
			last = "-"
		}
		if !s.LastCommit.IsZero() {
			written = s.LastCommit.Format(time.RFC3339)
		}
		out = append(out, engine.StatusRow{Value: s, Cells: []string{s.Cluster, s.Region, "GTID " + s.GTIDPos, written, "-", "-", last, s.Error}})
	}
	return out
}

func regionStatus(ctx context.Context, r *storage.Region, cl config.Cluster) RegionStatus {
	s := RegionStatus{Cluster: cl.Name, Engine: Name, Region: r.Name}
	end, last, gap, ok, err := (&mywal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name}).DurableEnd(ctx)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	if ok {
		s.GTIDPos, s.LastCommit = end.String(), last
	}
	if gap != "" {
		s.Error = "binlog gap: " + gap + "; the binlog after it cannot be replayed"
	}
	if list, damaged, err := mysnap.ListBackups(ctx, r.Pipeline, cl.Name); err != nil {
		s.Error = err.Error()
	} else {
		if len(list) > 0 {
			s.LastBackup = list[len(list)-1].ID
		}
		if note := snapshots.DamagedNote(damaged); note != "" {
			s.Error = engine.JoinNote(s.Error, note)
		}
	}
	return s
}

// Prune implements engine.Pruner.
func (Engine) Prune(ctx context.Context, env engine.Env, r *storage.Region, dryRun bool) (engine.Output, error) {
	res, err := mysnap.Prune(ctx, r.Pipeline, env.Cluster.Name, env.Cluster.Retention, time.Now(), dryRun)
	if err != nil {
		return engine.Output{}, err
	}
	return engine.Output{Value: res, Text: func(w io.Writer) error {
		verb := "expired"
		if dryRun {
			verb = "would expire"
		}
		_, err := fmt.Fprintf(w, "region %s: kept %d backup(s); %s %v and %d binlog chunk(s)\n", res.Region, len(res.Kept), verb, res.Expired, res.BinlogChunks)
		return err
	}}, nil
}

// NewShipper implements engine.Shipping: the binlog dumped as a replica.
func (Engine) NewShipper(cl config.Cluster, regions []*storage.Region, log *slog.Logger) engine.Shipper {
	sh := &mywal.Shipper{Cluster: cl.Name, DSN: cl.DSN, ServerID: cl.ServerID, FlushInterval: time.Duration(cl.FlushInterval), Log: log,
		Sync: engine.SyncPolicy(cl)}
	sh.SetSyncPolicy(sh.Sync)
	if engine.HeartbeatOn(cl) {
		sh.Heartbeat = mywal.NewHeartbeatTable(cl.Monitor.Heartbeat.Table, cl.HeartbeatDSN(), time.Duration(cl.Monitor.Heartbeat.FlushInterval))
	}
	for _, r := range regions {
		if slices.Contains(cl.ShipTo, r.Name) {
			sh.Targets = append(sh.Targets, &mywal.Target{Catalog: &mywal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name},
				Sync: sh.Sync.Includes(r.Name)})
		}
	}
	return sh
}

// BackupEngine implements engine.Scheduling.
func (Engine) BackupEngine(cl config.Cluster, regions []*storage.Region, log *slog.Logger) snapshots.Engine {
	return &mysnap.Engine{Cluster: cl, Regions: regions, Log: log}
}

// Probes implements engine.Monitoring.
func (Engine) Probes(cl config.Cluster, beat bool, primary monitor.Server, replicas []monitor.Server) (monitor.Prober, monitor.Heartbeater, error) {
	table := ""
	if beat {
		table = cl.Monitor.Heartbeat.Table
	}
	p, err := mymon.NewProber(cl.Name, table, primary, replicas)
	if err != nil || !beat {
		return p, nil, err
	}
	h, err := mymon.NewHeartbeat(cl.Name, table, cl.HeartbeatDSN())
	return p, h, err
}

// PasswordEnv implements engine.Passwords.
func (Engine) PasswordEnv() string { return "MYSQL_PWD" }

// WithPassword implements engine.Passwords for go-sql-driver DSNs.
func (Engine) WithPassword(dsn, pw string) (string, error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return "", engine.Usage(fmt.Errorf("the DSN is not a MySQL DSN (user@tcp(host:3306)/): %w", err))
	}
	if cfg.Passwd == "" {
		cfg.Passwd = pw
	}
	return cfg.FormatDSN(), nil
}
