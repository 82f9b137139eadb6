package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/storage"
)

// Options say what to drill.
type Options struct {
	Env    engine.Env
	Region *storage.Region
	// TargetTime, if set, restores to that time instead of the newest.
	TargetTime *time.Time
	BackupID   string
	// Root holds the sandbox folders (default: $TMPDIR/drkit-drill).
	Root string
	// DeepCheck runs the engine's check of the whole restored data
	// (engine.DeepChecker) after the heartbeat check; an engine without one
	// fails the drill rather than pass unchecked.
	DeepCheck bool
}

// Phase is one timed step of a drill.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Report is what a drill found. OK is false when any step failed; Error
// then says which and why.
type Report struct {
	Cluster  string    `json:"cluster"`
	Engine   string    `json:"engine"`
	Region   string    `json:"region"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	Phases   []Phase   `json:"phases"`
	// RTOSeconds is the wall time from the start to a usable, checked server.
	RTOSeconds float64 `json:"rto_seconds,omitempty"`
	// RPOSeconds is Started less Newest.
	RPOSeconds float64 `json:"rpo_seconds"`
	// Newest is the newest heartbeat or commit time in the restored data;
	// NewestSource says which.
	Newest       time.Time `json:"newest,omitzero"`
	NewestSource string    `json:"newest_source,omitempty"`
	BytesFetched int64     `json:"bytes_fetched"`
	// Restore is the engine's restore result.
	Restore any `json:"restore,omitempty"`
	// Sandbox is the folder the drill used (removed when it ended).
	Sandbox string `json:"sandbox"`
}

// Replayed is implemented by restore results that know the time of the
// newest write they replayed: a drill's RPO falls back to it when the
// restored data holds no heartbeat.
type Replayed interface {
	ReplayedTo() time.Time
}

// Run drills one region: stale sandboxes removed, a new one started, the
// restore, the start and the check, each timed; the sandbox is removed
// whatever happened. The error is also in the report (OK false).
func Run(ctx context.Context, o Options) (Report, error) {
	cl := o.Env.Cluster
	log := o.Env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Root == "" {
		o.Root = filepath.Join(os.TempDir(), "drkit-drill")
	}
	// Before the clock starts: what a killed drill left is not this one's RTO.
	CleanStale(o.Root, log)
	rep := Report{Cluster: cl.Name, Engine: cl.Engine, Region: o.Region.Name, Started: time.Now().UTC()}
	err := run(ctx, o, log, &rep)
	rep.Finished = time.Now().UTC()
	rep.OK = err == nil
	if err != nil {
		rep.Error = err.Error()
	}
	return rep, err
}

func run(ctx context.Context, o Options, log *slog.Logger, rep *Report) error {
	dr, err := engine.Capable[engine.Driller](o.Env.Cluster.Engine, "run restore drills")
	if err != nil {
		return err
	}
	rs, err := engine.Capable[engine.Restorer](o.Env.Cluster.Engine, "restore")
	if err != nil {
		return err
	}
	dir, err := newSandboxDir(o.Root, o.Env.Cluster.Name, o.Region.Name)
	if err != nil {
		return err
	}
	rep.Sandbox = dir
	defer func() {
		if err := removeSandbox(dir); err != nil {
			log.Error("drill: could not remove its sandbox; the next drill removes it", "dir", dir, "err", err)
		}
	}()
	var read atomic.Int64
	defer func() { rep.BytesFetched = read.Load() }()
	timed := func(name string, f func() error) error {
		t0 := time.Now()
		err := f()
		rep.Phases = append(rep.Phases, Phase{Name: name, Seconds: time.Since(t0).Seconds()})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	// Every manifest of the region must read: a damaged one is a backup a
	// disaster restore would not have (the restore itself skips it).
	region := readOnlyRegion(o.Region, &read)
	if err := timed("choose backup", func() error {
		bl, err := engine.Capable[engine.BackupLister](o.Env.Cluster.Engine, "list backups")
		if err != nil {
			return err
		}
		_, damaged, err := bl.ListBackups(ctx, o.Env, region)
		if err != nil {
			return err
		}
		if len(damaged) > 0 {
			return fmt.Errorf("region %s holds %d damaged backup manifest(s): %s", o.Region.Name, len(damaged), damaged[0])
		}
		return nil
	}); err != nil {
		return err
	}
	var sb engine.Sandbox
	if err := timed("sandbox", func() error {
		sb, err = dr.Sandbox(ctx, o.Env, dir, func(pid int) error { return recordPID(dir, pid) })
		return err
	}); err != nil {
		return err
	}
	defer sb.Close()
	if err := timed("restore", func() error {
		out, err := rs.Restore(ctx, o.Env, engine.RestoreRequest{Region: region, TargetTime: o.TargetTime, BackupID: o.BackupID, Flags: sb.RestoreFlags()})
		rep.Restore = out.Value
		if err == nil && len(out.Damaged) > 0 {
			err = fmt.Errorf("region %s holds %d damaged backup manifest(s), first %s: %s", o.Region.Name, len(out.Damaged), out.Damaged[0].Key, out.Damaged[0].Problem)
		}
		return err
	}); err != nil {
		return err
	}
	if err := timed("start", func() error { return sb.Start(ctx) }); err != nil {
		return err
	}
	if err := timed("check", func() error {
		t, source, ok, err := sb.Newest(ctx)
		if err != nil {
			return err
		}
		if r, replay := rep.Restore.(Replayed); !ok && replay && !r.ReplayedTo().IsZero() {
			// Not found in the data, but the newest write the replay applied.
			t, source, ok = r.ReplayedTo(), "replayed log (no heartbeat in the restored data)", true
		}
		if !ok {
			return errors.New("the restored data holds no heartbeat or commit time to measure the RPO by (drd writes the heartbeat for clusters with replicas or a drill)")
		}
		rep.Newest, rep.NewestSource = t.UTC(), source
		rep.RTOSeconds = time.Since(rep.Started).Seconds()
		rep.RPOSeconds = max(0, rep.Started.Sub(t).Seconds())
		if o.TargetTime != nil {
			rep.RPOSeconds = max(0, o.TargetTime.Sub(t).Seconds())
		}
		return nil
	}); err != nil || !o.DeepCheck {
		return err
	}
	return timed("deep check", func() error {
		dc, ok := sb.(engine.DeepChecker)
		if !ok {
			return fmt.Errorf("engine %s has no deep check of the restored data", o.Env.Cluster.Engine)
		}
		return dc.DeepCheck(ctx)
	})
}
