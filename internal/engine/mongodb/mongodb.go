// Package mongodb registers the MongoDB engine: drd ships the oplog into
// every region and takes base backups (binlog/mongodb, snapshots/mongodb)
// and probes the primary and replicas (monitor/mongodb); drctl backs up,
// restores, verifies, prunes and reports status; drctl replica check and
// drd's sync_check compare a replica with its primary, and drctl replica
// create adds a member to the primary's replica set (replication/mongodb;
// real MongoDB only). Promotion is not built: drd and drctl answer "engine
// mongodb cannot promote replicas yet".
//
// Imports internal/engine and the engine's packages.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	mgwal "github.com/drkit/drkit/binlog/mongodb"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/monitor"
	mgmon "github.com/drkit/drkit/monitor/mongodb"
	"github.com/drkit/drkit/replication"
	mgrepl "github.com/drkit/drkit/replication/mongodb"
	"github.com/drkit/drkit/snapshots"
	mgsnap "github.com/drkit/drkit/snapshots/mongodb"
	"github.com/drkit/drkit/storage"
)

// Name is the engine's name in the config.
const Name = "mongodb"

// Engine is the MongoDB engine.
type Engine struct{}

func init() { engine.Register(Engine{}) }

// Name implements engine.Engine.
func (Engine) Name() string { return Name }

var (
	_ engine.Configured   = Engine{}
	_ engine.Shipping     = Engine{}
	_ engine.Scheduling   = Engine{}
	_ engine.Backuper     = Engine{}
	_ engine.BackupLister = Engine{}
	_ engine.Restorer     = Engine{}
	_ engine.Verifier     = Engine{}
	_ engine.StatusReader = Engine{}
	_ engine.Pruner       = Engine{}
	_ engine.Passwords    = Engine{}
	_ engine.Monitoring   = Engine{}
)

// Probes implements engine.Monitoring.
func (Engine) Probes(cl config.Cluster, beat bool, primary monitor.Server, replicas []monitor.Server) (monitor.Prober, monitor.Heartbeater, error) {
	table := ""
	if beat {
		table = cl.Monitor.Heartbeat.Table
	}
	p, err := mgmon.NewProber(cl.Name, table, primary, replicas)
	if err != nil || !beat {
		return p, nil, err
	}
	h, err := mgmon.NewHeartbeat(cl.Name, table, cl.HeartbeatDSN())
	return p, h, err
}

// ConfigRules implements engine.Configured: a mongodb:// or mongodb+srv://
// URL.
func (Engine) ConfigRules() config.EngineRules {
	return config.EngineRules{
		CheckDSN: func(dsn string) error {
			u, err := url.Parse(dsn)
			if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") || u.Host == "" {
				return errors.New("is not a MongoDB URL (mongodb://user:password@host:27017/?replicaSet=rs0)")
			}
			return nil
		},
		Defaults: func(cl *config.Cluster) {
			if cl.Monitor.Heartbeat.Table == "" {
				cl.Monitor.Heartbeat.Table = "drkit_heartbeat" // a collection of database drkit
			}
		},
		SyncCheck:   true,
		Drill:       true,
		DrillTarget: true,
	}
}

var (
	_ engine.SyncChecker    = Engine{}
	_ engine.ReplicaCreator = Engine{}
)

// ReplicaFlags implements engine.ReplicaCreator: none.
func (Engine) ReplicaFlags() []string { return nil }

// CreateReplica implements engine.ReplicaCreator: a member added to the
// primary's replica set (real MongoDB only).
func (e Engine) CreateReplica(ctx context.Context, env engine.Env, req engine.ReplicaRequest) (any, error) {
	if err := engine.CheckFlags(Name, req.Flags, e.ReplicaFlags()); err != nil {
		return nil, err
	}
	region := ""
	if req.Region != nil {
		region = req.Region.Name
	}
	return mgrepl.Create(ctx, mgrepl.CreateOptions{Cluster: env.Cluster, Name: req.Name, Region: region, DSN: req.DSN, Catalog: req.Catalog, Log: env.Log})
}

// SyncCheck implements engine.SyncChecker: collections compared in _id
// chunks, the heartbeat collection left out.
func (Engine) SyncCheck(ctx context.Context, cl config.Cluster, primaryDSN string, r config.Replica, opts replication.Checker) (replication.Report, error) {
	opts.Skip = []string{"drkit." + cl.Monitor.Heartbeat.Table}
	return mgrepl.SyncCheck(ctx, primaryDSN, r.DSN, opts)
}

// PasswordEnv implements engine.Passwords: MongoDB's tools read none; drkit
// reads this one.
func (Engine) PasswordEnv() string { return "DRKIT_MONGODB_PASSWORD" }

// WithPassword implements engine.Passwords for mongodb:// URLs.
func (Engine) WithPassword(dsn, pw string) (string, error) { return engine.URLPassword(dsn, pw) }

// NewShipper implements engine.Shipping: the oplog, a reader per region.
func (Engine) NewShipper(cl config.Cluster, all []*storage.Region, log *slog.Logger) engine.Shipper {
	sh := &mgwal.Shipper{Cluster: cl.Name, DSN: cl.DSN, FlushInterval: time.Duration(cl.FlushInterval), Log: log}
	for _, r := range all {
		if slices.Contains(cl.ShipTo, r.Name) {
			sh.Regions = append(sh.Regions, r)
		}
	}
	return sh
}

// BackupEngine implements engine.Scheduling.
func (Engine) BackupEngine(cl config.Cluster, regions []*storage.Region, log *slog.Logger) snapshots.Engine {
	return &mgsnap.Engine{Cluster: cl, Regions: regions, Log: log}
}

// Backup implements engine.Backuper.
func (Engine) Backup(ctx context.Context, env engine.Env, regions []*storage.Region) (engine.Output, error) {
	b, err := mgsnap.Backup(ctx, env.Cluster.DSN, regions, env.Cluster.Name, env.Log)
	if b.ID == "" {
		return engine.Output{}, err
	}
	return engine.Output{Value: b, Text: func(w io.Writer) error { _, err := fmt.Fprintln(w, b.ID); return err }}, err
}

// ListBackups implements engine.BackupLister.
func (Engine) ListBackups(ctx context.Context, env engine.Env, r *storage.Region) (engine.Output, []snapshots.Damaged, error) {
	list, damaged, err := mgsnap.ListBases(ctx, r.Pipeline, env.Cluster.Name)
	if err != nil {
		return engine.Output{}, damaged, err
	}
	if list == nil {
		list = []mgsnap.Base{}
	}
	return engine.Output{Value: list, Text: func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tOPLOG START\tOPLOG END\tCOLLECTIONS\tDOCUMENTS\tBYTES\tSTORED")
		for _, b := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", b.ID, b.Time.Format(time.RFC3339), b.Start, b.End, len(b.Collections), b.Docs, b.Bytes, b.StoredSize)
		}
		return tw.Flush()
	}}, damaged, nil
}

// RestoreFlags implements engine.Restorer.
func (Engine) RestoreFlags() []string { return []string{"target-dsn"} }

// Restore implements engine.Restorer: into an empty running server.
func (e Engine) Restore(ctx context.Context, env engine.Env, req engine.RestoreRequest) (engine.Output, error) {
	if err := engine.CheckFlags(Name, req.Flags, e.RestoreFlags()); err != nil {
		return engine.Output{}, err
	}
	dsn := req.Flags["target-dsn"]
	if dsn == "" {
		return engine.Output{}, engine.Usage(errors.New("give --target-dsn: an empty MongoDB server (mongodb://host:27017/) that engine mongodb restores into"))
	}
	o := mgsnap.RestoreOptions{Cluster: env.Cluster.Name, Region: req.Region, TargetDSN: dsn, BackupID: req.BackupID, AcceptGap: req.AcceptGap, Log: env.Log, Phase: env.Phase}
	env.Enter("fetch base")
	if req.TargetTime != nil {
		o.Stop = *req.TargetTime
	}
	res, err := mgsnap.Restore(ctx, o)
	if err != nil {
		return engine.Output{}, err
	}
	return engine.Output{Value: res, Text: func(w io.Writer) error {
		fmt.Fprintf(w, "restored backup %s from region %s: %d document(s) loaded, %d oplog entr(ies) replayed to ts %s (%s), %d index(es) built\n",
			res.Backup, res.Region, res.Docs, res.Entries, res.LastTS, res.LastTime.Format(time.RFC3339Nano), res.Indexes)
		if res.Gap != "" {
			_, err := fmt.Fprintf(w, "WARNING: restored up to a gap in the oplog (--accept-gap): %s\n", res.Gap)
			return err
		}
		return nil
	}}, nil
}

// Verify implements engine.Verifier.
func (Engine) Verify(ctx context.Context, env engine.Env, r *storage.Region, all bool) (engine.Output, int, error) {
	rep, err := mgsnap.Verify(ctx, r.Pipeline, env.Cluster.Name, all, env.Progress)
	if err != nil {
		return engine.Output{}, 0, err
	}
	return engine.Output{Value: rep, Text: func(w io.Writer) error {
		fmt.Fprintf(w, "cluster %s in region %s: %d oplog chunk(s) in %d chain(s); %d backup(s)\n", rep.Cluster, rep.Region, rep.Chunks, len(rep.Chains), len(rep.Backups))
		for _, p := range rep.Problems {
			fmt.Fprintln(w, "PROBLEM:", p)
		}
		switch {
		case !rep.OK:
		case rep.Checked == "all":
			fmt.Fprintf(w, "OK: every backup rolls forward without a gap; every collection and oplog chunk (%d objects, %d bytes) read and their SHA-256 checked\n", rep.ObjectsRead, rep.BytesRead)
		default:
			fmt.Fprintln(w, "OK: every backup rolls forward without a gap (from the chunks' names); the newest backup's collections read and their SHA-256 checked; chunks not read: --all-checksums reads everything")
		}
		return nil
	}}, len(rep.Problems), nil
}

// RegionStatus is one region's row of drctl status for a MongoDB cluster.
type RegionStatus struct {
	Cluster    string    `json:"cluster"`
	Engine     string    `json:"engine"`
	Region     string    `json:"region"`
	Durable    mgwal.TS  `json:"durable_ts"`
	LastCommit time.Time `json:"last_entry_time,omitzero"`
	LagSeconds *float64  `json:"lag_seconds,omitempty"`
	LastBackup string    `json:"last_backup,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Status implements engine.StatusReader: each region's durable oplog
// position and time, and how far it is behind the primary's newest entry
// when the primary answers.
func (Engine) Status(ctx context.Context, env engine.Env) []engine.StatusRow {
	cl := env.Cluster
	newest, ok := primaryNewest(ctx, cl.DSN)
	var out []engine.StatusRow
	for _, name := range cl.ShipTo {
		s := RegionStatus{Cluster: cl.Name, Engine: Name, Region: name}
		if r, err := regions.Open(ctx, env.Config, name, storage.RegionOptions{}); err != nil {
			s.Error = err.Error()
		} else {
			regionStatus(ctx, r, &s)
		}
		if ok && s.Error == "" && s.Durable > 0 {
			lag := max(0, newest.Time().Sub(s.Durable.Time()).Seconds())
			s.LagSeconds = &lag
		}
		lag, written, last := "?", "-", s.LastBackup
		if s.LagSeconds != nil {
			lag = strconv.FormatFloat(*s.LagSeconds, 'f', 0, 64)
		}
		if !s.LastCommit.IsZero() {
			written = s.LastCommit.Format(time.RFC3339)
		}
		if last == "" {
			last = "-"
		}
		out = append(out, engine.StatusRow{Value: s, Cells: []string{s.Cluster, s.Region, "ts " + s.Durable.String(), written, "-", lag, last, s.Error}})
	}
	return out
}

func regionStatus(ctx context.Context, r *storage.Region, s *RegionStatus) {
	refs, err := (&mgwal.Catalog{Pipeline: r.Pipeline, Cluster: s.Cluster}).List(ctx)
	if err != nil {
		s.Error = err.Error()
		return
	}
	if chains := mgwal.Chains(refs); len(chains) > 0 {
		last := chains[len(chains)-1]
		s.Durable, s.LastCommit = last.End, time.UnixMilli(last.LastMS).UTC()
	}
	bases, damaged, err := mgsnap.ListBases(ctx, r.Pipeline, s.Cluster)
	if err != nil {
		s.Error = err.Error()
		return
	}
	if len(bases) > 0 {
		s.LastBackup = bases[len(bases)-1].ID
	}
	s.Error = snapshots.DamagedNote(damaged)
}

// primaryNewest is the primary's newest oplog entry; ok is false when it
// does not answer (status reads the stores, the primary may be gone).
func primaryNewest(ctx context.Context, dsn string) (mgwal.TS, bool) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	src, err := mgwal.Connect(ctx, dsn)
	if err != nil {
		return 0, false
	}
	defer src.Close()
	_, newest, err := src.Bounds(ctx)
	return newest, err == nil
}

// Prune implements engine.Pruner.
func (Engine) Prune(ctx context.Context, env engine.Env, r *storage.Region, dryRun bool) (engine.Output, error) {
	res, err := mgsnap.Prune(ctx, r.Pipeline, env.Cluster.Name, env.Cluster.Retention, time.Now(), dryRun)
	if err != nil {
		return engine.Output{}, err
	}
	return engine.Output{Value: res, Text: func(w io.Writer) error {
		verb := "expired"
		if dryRun {
			verb = "would expire"
		}
		_, err := fmt.Fprintf(w, "region %s: kept %d backup(s); %s %v and %d oplog chunk(s)\n", res.Region, len(res.Kept), verb, res.Expired, res.Chunks)
		return err
	}}, nil
}
