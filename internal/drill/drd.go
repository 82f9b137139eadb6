package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/sandbox"
	"github.com/drkit/drkit/snapshots/schedule"
	"github.com/drkit/drkit/storage"
)

// KindDrill is the schedule kind of drills.
const KindDrill = "drill"

// HistoryPrefix is where drill reports are kept in the jobs region:
// <prefix>/<cluster>/<started>-<region>.json.
const HistoryPrefix = "_drkit/drills"

// History is how many reports per cluster are kept.
const History = 100

// Describe returns a cluster's drill job without its Run.
func Describe(cl config.Cluster) schedule.Job {
	return schedule.Job{Name: "drill-" + cl.Name, Kind: KindDrill, Spec: cl.Drill.Job,
		Timeout: time.Duration(cl.Drill.MaxDuration)*time.Duration(len(drillRegions(cl))) + time.Minute}
}

func drillRegions(cl config.Cluster) []string {
	if len(cl.Drill.Regions) > 0 {
		return cl.Drill.Regions
	}
	return cl.ShipTo
}

// Drills runs a cluster's scheduled drills in drd, one region after the
// other, and keeps their reports in Jobs (the jobs region's store).
type Drills struct {
	Config  *config.Config
	Cluster config.Cluster
	Runner  *schedule.Runner
	Jobs    storage.Store
	Metrics *Metrics
	// Slots, shared by the clusters' Drills, bounds the drills running at
	// once on this host (nil: no bound).
	Slots chan struct{}
	Log   *slog.Logger
}

// Name implements lifecycle.Component.
func (d *Drills) Name() string { return "drill/" + d.Cluster.Name }

// Run implements lifecycle.Component: the metrics from the stored history,
// then the schedule.
func (d *Drills) Run(ctx context.Context) error {
	cl := d.Cluster
	if s, err := cron.ParseStandard(cl.Drill.Schedule); err == nil {
		next := s.Next(time.Now())
		d.Metrics.Describe(cl.Name, drillRegions(cl), s.Next(next).Sub(next), time.Duration(cl.Objectives.RTO), time.Duration(cl.Objectives.RPO))
	}
	if reps, err := List(ctx, d.Jobs, cl.Name); err != nil {
		d.Log.Warn("drills: cannot read their history; metrics start empty", "cluster", cl.Name, "err", err)
	} else {
		for _, r := range reps { // oldest first: the newest of each region stays
			d.Metrics.Observe(r)
		}
	}
	job := Describe(cl)
	job.Run = d.run
	return d.Runner.Run(ctx, []schedule.Job{job})
}

// run drills every region; one failing does not stop the others.
func (d *Drills) run(ctx context.Context) (schedule.Result, error) {
	var details, failed []string
	for _, name := range drillRegions(d.Cluster) {
		rep := d.one(ctx, name)
		d.Metrics.Observe(rep)
		if err := d.keep(ctx, rep); err != nil {
			d.Log.Error("drills: cannot store the report", "cluster", d.Cluster.Name, "region", name, "err", err)
		}
		if rep.OK {
			details = append(details, fmt.Sprintf("%s: OK, RTO %.1f s, RPO %.1f s", name, rep.RTOSeconds, rep.RPOSeconds))
			continue
		}
		d.Log.Error("restore drill failed", "cluster", d.Cluster.Name, "region", name, "err", rep.Error)
		details = append(details, fmt.Sprintf("%s: FAILED", name))
		failed = append(failed, fmt.Sprintf("%s: %s", name, rep.Error))
	}
	res := schedule.Result{Objects: len(details), Detail: strings.Join(details, "; ")}
	if len(failed) > 0 {
		return res, fmt.Errorf("drill failed in %s", strings.Join(failed, "; "))
	}
	return res, nil
}

// one drills region name, within the cluster's max_duration, as a drctl
// drill child process at a lower CPU and I/O priority (inherited by what it
// starts: the sandbox, PostgreSQL's wal-fetch), which dies with drd.
func (d *Drills) one(ctx context.Context, name string) Report {
	fail := func(err error) Report {
		now := time.Now().UTC()
		return Report{Cluster: d.Cluster.Name, Engine: d.Cluster.Engine, Region: name, Started: now, Finished: now, Error: err.Error()}
	}
	if d.Slots != nil {
		select {
		case d.Slots <- struct{}{}:
			defer func() { <-d.Slots }()
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(d.Cluster.Drill.MaxDuration))
	defer cancel()
	drctl, err := sandbox.Find("drctl")
	if err != nil {
		return fail(fmt.Errorf("drctl, which runs the drill: %w", err))
	}
	args := []string{"drill", "--config", d.Config.Path, "--cluster", d.Cluster.Name, "--region", name, "--json"}
	if d.Cluster.Drill.Sandbox != "" {
		args = append(args, "--sandbox-dir", d.Cluster.Drill.Sandbox)
	}
	if d.Cluster.Drill.DeepCheck {
		args = append(args, "--deep-check")
	}
	cmd := exec.CommandContext(ctx, drctl, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// At max_duration: SIGTERM, so that it removes its sandbox.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Minute // past the sandbox's own stop (pg_ctl stop: 90 s)
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start drctl drill: %w", err))
	}
	if err := sandbox.Lower(cmd.Process.Pid); err != nil {
		d.Log.Warn("drills: cannot lower the drill's priority", "err", err)
	}
	runErr := cmd.Wait()
	rep, err := DecodeReport(stdout.Bytes())
	if err != nil {
		if ctx.Err() != nil {
			runErr = fmt.Errorf("stopped at drill.max_duration %s", d.Cluster.Drill.MaxDuration)
		}
		return fail(fmt.Errorf("drctl drill: %v: %s", runErr, strings.TrimSpace(stderr.String())))
	}
	return rep
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

// keep stores rep in the history and drops the oldest beyond History.
func (d *Drills) keep(ctx context.Context, rep Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	key := path.Join(HistoryPrefix, rep.Cluster, rep.Started.Format("20060102T150405.000Z")+"-"+rep.Region+".json")
	if err := d.Jobs.Put(ctx, key, bytes.NewReader(b)); err != nil {
		return err
	}
	keys, err := historyKeys(ctx, d.Jobs, rep.Cluster)
	if err != nil || len(keys) <= History {
		return err
	}
	return d.Jobs.Delete(ctx, keys[:len(keys)-History]...)
}

func historyKeys(ctx context.Context, st storage.Store, cluster string) ([]string, error) {
	var keys []string
	for info, err := range st.List(ctx, path.Join(HistoryPrefix, cluster)+"/") {
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(info.Key, ".json") {
			keys = append(keys, info.Key)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// maxReport bounds a stored report read back (a store is untrusted).
const maxReport = 1 << 20

// List returns a cluster's stored drill reports, oldest first; one that
// cannot be read is skipped.
func List(ctx context.Context, st storage.Store, cluster string) ([]Report, error) {
	keys, err := historyKeys(ctx, st, cluster)
	if err != nil {
		return nil, err
	}
	var out []Report
	for _, k := range keys {
		rc, err := st.Get(ctx, k, 0, -1)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxReport))
		rc.Close()
		if err != nil {
			continue
		}
		if rep, err := DecodeReport(b); err == nil {
			out = append(out, rep)
		}
	}
	return out, nil
}

// DecodeReport reads a stored report, refusing one that is not a drill
// report.
func DecodeReport(b []byte) (Report, error) {
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return Report{}, fmt.Errorf("drill report: %w", err)
	}
	if rep.Cluster == "" || rep.Region == "" || rep.Started.IsZero() {
		return Report{}, fmt.Errorf("drill report: no cluster, region or start")
	}
	return rep, nil
}
