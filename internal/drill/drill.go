package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

// openTarget opens the drill target the config names (drill.target): a
// server kept for drills. It must be empty, or hold only what an earlier
// drill of this cluster that was killed left (its heartbeat), which is
// cleared first; any other content is refused and never touched. The
// Sandbox it returns empties the server again when closed.
func openTarget(ctx context.Context, env engine.Env, dsn string, log *slog.Logger) (engine.Sandbox, error) {
	td, err := engine.Capable[engine.TargetDriller](env.Cluster.Engine, "run drills into drill.target")
	if err != nil {
		return nil, err
	}
	t, err := td.DrillTarget(ctx, env, dsn)
	if err != nil {
		return nil, err
	}
	if err := t.CheckEmpty(ctx); err != nil {
		if _, _, leftover, nerr := t.Newest(ctx); nerr != nil || !leftover {
			t.Close()
			return nil, fmt.Errorf("drill.target of cluster %s: %w: a drill restores only into an empty server kept for drills, and what this one holds carries no heartbeat of the cluster, so it is not known to be a drill's (a drill killed early in its load leaves such data: empty the server by hand)", env.Cluster.Name, err)
		}
		log.Warn("drill: the drill target holds what an earlier drill of this cluster left (its heartbeat); emptying it", "cluster", env.Cluster.Name)
		if err := t.Clear(ctx); err != nil {
			t.Close()
			return nil, err
		}
	}
	return clearOnClose{t}, nil
}

// clearOnClose empties a drill target when the drill ends.
type clearOnClose struct{ engine.DrillTarget }

func (c clearOnClose) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := c.Clear(ctx)
	if cerr := c.DrillTarget.Close(); err == nil {
		err = cerr
	}
	return err
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
	meter := &Meter{}
	ph := newPhases(meter)
	defer func() {
		rep.Phases = ph.list()
		rep.BytesFetched = meter.Bytes()
	}()
	env := o.Env
	env.Phase = ph.enter
	// timed runs f as phase name; the engine may enter others within it
	// (the restore's "fetch base", "replay"). An error names the phase it
	// stopped in.
	timed := func(name string, f func() error) error {
		ph.enter(name)
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", ph.current(), err)
		}
		return nil
	}
	// Every manifest of the region must read: a damaged one is a backup a
	// disaster restore would not have (the restore itself skips it).
	region := ReadOnly(o.Region, meter)
	if err := timed("choose backup", func() error {
		bl, err := engine.Capable[engine.BackupLister](o.Env.Cluster.Engine, "list backups")
		if err != nil {
			return err
		}
		_, damaged, err := bl.ListBackups(ctx, env, region)
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
		if t := o.Env.Cluster.Drill.Target; t != "" {
			sb, err = openTarget(ctx, env, t, log)
			return err
		}
		sb, err = dr.Sandbox(ctx, env, dir, func(pid int) error { return recordPID(dir, pid) })
		return err
	}); err != nil {
		return err
	}
	defer func() {
		if err := sb.Close(); err != nil {
			log.Error("drill: could not stop or empty its sandbox; the next drill does", "cluster", o.Env.Cluster.Name, "err", err)
		}
	}()
	if err := timed("fetch base", func() error {
		out, err := rs.Restore(ctx, env, engine.RestoreRequest{Region: region, TargetTime: o.TargetTime, BackupID: o.BackupID, Flags: sb.RestoreFlags()})
		rep.Restore = out.Value
		if err == nil && len(out.Damaged) > 0 {
			err = fmt.Errorf("region %s holds %d damaged backup manifest(s), first %s: %s", o.Region.Name, len(out.Damaged), out.Damaged[0].Key, out.Damaged[0].Problem)
		}
		return err
	}); err != nil {
		return err
	}
	if bv, ok := sb.(engine.BaseVerifier); ok {
		if err := timed("verify base", func() error { return bv.VerifyBase(ctx) }); err != nil {
			return err
		}
	}
	if err := timed("start", func() error { return sb.Start(ctx) }); err != nil {
		return err
	}
	if lf, ok := sb.(engine.LogFetcher); ok {
		// The server fetched its log in processes of its own (PostgreSQL's
		// wal-fetch): their reads are the drill's too, and the replay
		// waited on them.
		n, wait, err := lf.LogFetched()
		if err != nil {
			return err
		}
		meter.bytes.Add(n)
		ph.enter("check")
		ph.move("replay", "fetch log", wait)
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
