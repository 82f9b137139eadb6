package snapshots

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/metrics"
	"github.com/drkit/drkit/snapshots/schedule"
	"github.com/drkit/drkit/storage"
)

var (
	layoutsMu sync.Mutex
	layouts   = map[string]LogLayout{}
)

// RegisterLayout records where engine keeps its log; engine packages call it
// in init(), as storage adapters register their schemes.
func RegisterLayout(engine string, l LogLayout) {
	layoutsMu.Lock()
	defer layoutsMu.Unlock()
	layouts[engine] = l
}

// LayoutFor returns engine's log layout.
func LayoutFor(engine string) (LogLayout, error) {
	layoutsMu.Lock()
	defer layoutsMu.Unlock()
	l, ok := layouts[engine]
	if !ok {
		return l, fmt.Errorf("backup-set copies of %s clusters are not supported yet", engine)
	}
	return l, nil
}

// KindBackupSet is the kind label of backup-set copies.
const KindBackupSet = "backup-set"

// CopyMetrics are the copy facts drd exports.
type CopyMetrics struct {
	last   *prometheus.GaugeVec
	errors *prometheus.CounterVec
}

// NewCopyMetrics registers drkit_copy_last_success_timestamp_seconds on reg.
func NewCopyMetrics(reg prometheus.Registerer) *CopyMetrics {
	last := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "drkit_copy_last_success_timestamp_seconds",
		Help: "When the newest successful copy of a kind (backup-set, image, volume-snapshot) from source_region to target_region ended (Unix time).",
	}, []string{"kind", "source_region", "target_region"})
	reg.MustRegister(last)
	return &CopyMetrics{last: last, errors: metrics.ErrorsTotal(reg)}
}

// CopyJob is one scheduled copy, as drd runs it (Job.Run is nil in one that
// only describes, as DescribeCopy's).
type CopyJob struct {
	Cluster string // "" for image and snapshot copies
	From    string
	To      string
	Job     schedule.Job
}

// Observe records a finished run of j.
func (m *CopyMetrics) Observe(j CopyJob, rec schedule.Record) {
	if rec.Status == schedule.StatusOK {
		m.last.WithLabelValues(j.Job.Kind, j.From, j.To).Set(float64(rec.End.UnixNano()) / 1e9)
		return
	}
	m.errors.WithLabelValues(j.Cluster, j.To, "copy").Inc()
}

// DescribeCopy returns a copies entry's job without its Run: its name (and
// records' folder), kind and schedule.
func DescribeCopy(cp config.Copy) CopyJob {
	return CopyJob{Cluster: cp.Cluster, From: cp.From, To: cp.To,
		Job: schedule.Job{Name: fmt.Sprintf("copy-%s-%s-to-%s", cp.Cluster, cp.From, cp.To), Kind: KindBackupSet, Spec: cp.Job}}
}

// JobStatus is a scheduled job and its recent runs, newest first, as
// recorded in the jobs region (runs of every drd instance).
type JobStatus struct {
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	Cluster  string            `json:"cluster,omitempty"`
	From     string            `json:"source_region"`
	To       string            `json:"target_region"`
	Schedule string            `json:"schedule"`
	CatchUp  string            `json:"catch_up"`
	Runs     []schedule.Record `json:"runs"`
	// Error says why the runs could not be read (the jobs region is down).
	Error string `json:"error,omitempty"`
}

// Statuses reads each job's records through r; with r nil (the jobs region
// could not be opened) every status carries unreadable as its error.
func Statuses(ctx context.Context, r *schedule.Runner, jobs []CopyJob, unreadable error) []JobStatus {
	out := make([]JobStatus, 0, len(jobs))
	for _, j := range jobs {
		st := JobStatus{Name: j.Job.Name, Kind: j.Job.Kind, Cluster: j.Cluster, From: j.From, To: j.To,
			Schedule: j.Job.Spec.Schedule, CatchUp: j.Job.Spec.CatchUp, Runs: []schedule.Record{}}
		err := unreadable
		if r != nil {
			var runs []schedule.Record
			if runs, err = r.Records(ctx, j.Job.Name); runs != nil {
				st.Runs = runs
			}
		}
		if err != nil {
			st.Error = err.Error()
		}
		out = append(out, st)
	}
	return out
}

// NewBackupSetJob builds the scheduled job of one copies entry. open returns
// a configured region by name.
func NewBackupSetJob(cp config.Copy, engine string, open func(name string) (*storage.Region, error), log *slog.Logger) (CopyJob, error) {
	layout, err := LayoutFor(engine)
	if err != nil {
		return CopyJob{}, fmt.Errorf("copy of %s: %w", cp.Cluster, err)
	}
	run := func(ctx context.Context) (schedule.Result, error) {
		from, err := open(cp.From)
		if err != nil {
			return schedule.Result{}, err
		}
		to, err := open(cp.To)
		if err != nil {
			return schedule.Result{}, err
		}
		rep, err := CopySet(ctx, cp.Cluster, from, to, layout, CopyOptions{Log: log})
		res := schedule.Result{Objects: rep.Copied, Bytes: rep.Bytes,
			Detail: fmt.Sprintf("%d backups copied, %d already there, %d log objects, %d objects skipped", len(rep.Backups), rep.BackupsPresent, rep.LogObjects, rep.Skipped)}
		return res, err
	}
	j := DescribeCopy(cp)
	j.Job.Run = run
	return j, nil
}

// Jobs is drd's component running the scheduled copies.
type Jobs struct {
	Runner  *schedule.Runner
	Jobs    []CopyJob
	Metrics *CopyMetrics

	hook sync.Once // the metrics' hook on Runner.Done
}

// Name implements drd's component interface.
func (j *Jobs) Name() string { return "jobs" }

// Run runs the jobs until ctx ends. The last-success gauges start from the
// records in the store, so a restarted drd does not report copies as never
// having run.
func (j *Jobs) Run(ctx context.Context) error {
	byName := map[string]CopyJob{}
	jobs := make([]schedule.Job, len(j.Jobs))
	for i, cj := range j.Jobs {
		byName[cj.Job.Name] = cj
		jobs[i] = cj.Job
		j.Metrics.errors.WithLabelValues(cj.Cluster, cj.To, "copy")
		if recs, err := j.Runner.Records(ctx, cj.Job.Name); err == nil {
			for _, rec := range recs {
				if rec.Status == schedule.StatusOK {
					j.Metrics.Observe(cj, rec)
					break
				}
			}
		}
	}
	// Once: under drd.ha, Run runs again each time the lease comes back,
	// and a hook per Run counted every copy once per Run so far.
	j.hook.Do(func() {
		done := j.Runner.Done
		j.Runner.Done = func(job schedule.Job, rec schedule.Record) {
			j.Metrics.Observe(byName[job.Name], rec)
			if done != nil {
				done(job, rec)
			}
		}
	})
	return j.Runner.Run(ctx, jobs)
}
