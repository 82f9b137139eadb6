package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/storage"
)

// DefaultPrefix is where job records live in the jobs region's store. It is
// outside every cluster's folder, so backup-set copies never carry it along.
const DefaultPrefix = "_drkit/jobs"

// DefaultHistory is how many records of each job are kept.
const DefaultHistory = 20

// DefaultTimeout bounds one run of a job.
const DefaultTimeout = 24 * time.Hour

// Run statuses.
const (
	StatusRunning = "running"
	StatusOK      = "ok"
	StatusFailed  = "failed"
)

// Result is what a job's run reports.
type Result struct {
	Objects int    `json:"objects"`
	Bytes   int64  `json:"bytes"`
	Detail  string `json:"detail,omitempty"`
}

// Job is one periodic job.
type Job struct {
	// Name is unique among jobs and safe as an object-key segment.
	Name string
	// Kind groups jobs in status and metrics ("base-backup", "backup-set", "image", "volume-snapshot", "volume-snapshot-take").
	Kind string
	Spec config.Job
	// Timeout bounds a run (default DefaultTimeout).
	Timeout time.Duration
	Run     func(ctx context.Context) (Result, error)
}

// Record is one run of a job, as kept in the store.
type Record struct {
	Job        string    `json:"job"`
	Kind       string    `json:"kind"`
	Activation time.Time `json:"activation"`
	CatchUp    bool      `json:"catch_up,omitempty"`
	Instance   string    `json:"instance"`
	Status     string    `json:"status"`
	Start      time.Time `json:"start"`
	// Renewed is when the running instance last said it is alive.
	Renewed time.Time `json:"renewed,omitzero"`
	End     time.Time `json:"end,omitzero"`
	Seconds float64   `json:"seconds"`
	Result
	Error string `json:"error,omitempty"`
}

// Runner runs jobs and keeps their records in Store.
type Runner struct {
	Store storage.Store
	// Prefix is the records' folder (default DefaultPrefix).
	Prefix string
	// Instance names this drd in records (default host:pid:random).
	Instance string
	// History is how many records per job are kept (default DefaultHistory).
	History int
	Log     *slog.Logger
	// Done, if set, is called after every run this instance made.
	Done func(Job, Record)
	// Renew is how often a running job's record is rewritten to show it is
	// alive (default 1m); a running record not renewed for 3 × Renew belongs
	// to a drd that died, and no longer blocks the job.
	Renew time.Duration

	once sync.Once
}

func (r *Runner) init() {
	r.once.Do(func() {
		if r.Prefix == "" {
			r.Prefix = DefaultPrefix
		}
		if r.History <= 0 {
			r.History = DefaultHistory
		}
		if r.Instance == "" {
			host, _ := os.Hostname()
			r.Instance = fmt.Sprintf("%s:%d:%04x", host, os.Getpid(), rand.IntN(1<<16))
		}
		if r.Log == nil {
			r.Log = slog.Default()
		}
		if r.Renew <= 0 {
			r.Renew = time.Minute
		}
	})
}

// Run runs every job on its schedule until ctx ends. A schedule that does not
// parse is an error before anything runs (config validation catches it first).
func (r *Runner) Run(ctx context.Context, jobs []Job) error {
	r.init()
	scheds := make([]cron.Schedule, len(jobs))
	for i, j := range jobs {
		s, err := cron.ParseStandard(j.Spec.Schedule)
		if err != nil {
			return fmt.Errorf("job %s: schedule %q: %w", j.Name, j.Spec.Schedule, err)
		}
		scheds[i] = s
	}
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() { r.loop(ctx, j, scheds[i]) })
	}
	wg.Wait()
	return nil
}

// loop catches up if the policy says so, then runs each activation.
func (r *Runner) loop(ctx context.Context, j Job, s cron.Schedule) {
	if j.Spec.CatchUp == "once" {
		if missed := r.missed(ctx, j, s, time.Now()); !missed.IsZero() {
			r.Log.Info("job missed a run while drd was not running; catching up once", "job", j.Name, "activation", missed)
			r.activate(ctx, j, missed, true)
		}
	}
	for {
		next := s.Next(time.Now())
		if !sleep(ctx, time.Until(next)+jitter(j.Spec.Jitter)) {
			return
		}
		r.activate(ctx, j, next, false)
	}
}

// missed returns the newest activation after the job's newest record and not
// after now, or zero when none was missed or the job never ran.
func (r *Runner) missed(ctx context.Context, j Job, s cron.Schedule, now time.Time) time.Time {
	newest, ok, err := r.newest(ctx, j.Name)
	if err != nil {
		r.Log.Warn("cannot read the job's records; no catch-up", "job", j.Name, "err", err)
		return time.Time{}
	}
	if !ok {
		return time.Time{}
	}
	var last time.Time
	for t, n := s.Next(newest.Activation), 0; !t.IsZero() && !t.After(now) && n < 1_000_000; t, n = s.Next(t), n+1 {
		last = t
	}
	return last
}

// activate takes the lease of one activation and runs it. ran is false when
// another run holds the lease; rec is then that run's record if known.
func (r *Runner) activate(ctx context.Context, j Job, at time.Time, catchUp bool) (rec Record, ran bool) {
	if busy, ok := r.running(ctx, j); ok {
		r.Log.Info("job run skipped: a run is still going", "job", j.Name, "instance", busy.Instance, "since", busy.Start)
		return busy, false
	}
	rec = Record{Job: j.Name, Kind: j.Kind, Activation: at.UTC(), CatchUp: catchUp, Instance: r.Instance, Status: StatusRunning, Start: time.Now().UTC()}
	if held, err := r.claim(ctx, rec); err != nil {
		r.Log.Error("job run skipped: cannot take its lease in the jobs region", "job", j.Name, "err", err)
		rec.Status, rec.Error, rec.End = StatusFailed, "take the lease: "+err.Error(), time.Now().UTC()
		r.done(j, rec)
		return rec, true
	} else if held != nil {
		r.Log.Info("job run skipped: another drd took this activation", "job", j.Name, "activation", at, "instance", held.Instance)
		return *held, false
	}
	timeout := j.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	stopRenew := r.renew(runCtx, rec)
	res, err := j.Run(runCtx)
	stopRenew()
	cancel()
	rec.Result, rec.End = res, time.Now().UTC()
	rec.Seconds = rec.End.Sub(rec.Start).Seconds()
	rec.Status = StatusOK
	if err != nil {
		rec.Status, rec.Error = StatusFailed, err.Error()
	}
	// The record is written even when ctx ended (drd stopping): a run cut
	// short is a failed run, not a running one.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer wcancel()
	if err := r.write(wctx, rec); err != nil {
		r.Log.Error("cannot record the job's run", "job", j.Name, "err", err)
	}
	r.prune(wctx, j.Name)
	r.done(j, rec)
	return rec, true
}

func (r *Runner) done(j Job, rec Record) {
	if rec.Status == StatusFailed {
		r.Log.Error("job run failed", "job", j.Name, "activation", rec.Activation, "err", rec.Error)
	} else {
		r.Log.Info("job run complete", "job", j.Name, "activation", rec.Activation, "objects", rec.Objects, "bytes", rec.Bytes, "seconds", rec.Seconds)
	}
	if r.Done != nil {
		r.Done(j, rec)
	}
}

// renew rewrites rec every Renew until the returned stop is called.
func (r *Runner) renew(ctx context.Context, rec Record) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.Renew)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				rec.Renewed = now.UTC()
				if err := r.write(ctx, rec); err != nil && ctx.Err() == nil {
					r.Log.Warn("cannot renew the job's record", "job", rec.Job, "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// running returns the newest record of j if it is a run still going: renewed
// (or started) within 3 × Renew.
func (r *Runner) running(ctx context.Context, j Job) (Record, bool) {
	last, ok, err := r.newest(ctx, j.Name)
	if err != nil || !ok {
		return Record{}, false
	}
	alive := last.Renewed
	if alive.IsZero() {
		alive = last.Start
	}
	return last, last.Status == StatusRunning && time.Since(alive) < 3*r.Renew
}

// claim creates the activation's record exclusively. held is the record of
// the run that already holds it, nil when this call took it.
func (r *Runner) claim(ctx context.Context, rec Record) (held *Record, err error) {
	b, _ := json.Marshal(rec)
	key := r.key(rec.Job, rec.Activation)
	err = storage.PutIfAbsent(ctx, r.Store, key, bytes.NewReader(b))
	if err == nil {
		return nil, nil
	}
	if !errors.Is(err, storage.ErrExists) {
		return nil, err
	}
	other, rerr := r.read(ctx, key)
	if rerr != nil {
		return nil, rerr
	}
	if other.Instance == rec.Instance && other.Start.Equal(rec.Start) {
		return nil, nil // our own create, answered 412 on a retry
	}
	return &other, nil
}

func (r *Runner) write(ctx context.Context, rec Record) error {
	b, _ := json.MarshalIndent(rec, "", "  ")
	return r.Store.Put(ctx, r.key(rec.Job, rec.Activation), bytes.NewReader(b))
}

func (r *Runner) read(ctx context.Context, key string) (Record, error) {
	var rec Record
	rc, err := r.Store.Get(ctx, key, 0, -1)
	if err != nil {
		return rec, err
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(&rec); err != nil {
		return rec, fmt.Errorf("%s in %s is not a job record: %w", key, r.Store, err)
	}
	return rec, nil
}

// key names an activation's record; the UTC time sorts listings.
func (r *Runner) key(job string, at time.Time) string {
	return r.Prefix + "/" + job + "/" + at.UTC().Format("20060102T150405Z") + ".json"
}

// Records returns job's records, newest first.
func (r *Runner) Records(ctx context.Context, job string) ([]Record, error) {
	r.init()
	keys, err := r.keys(ctx, job)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(keys))
	for i := len(keys) - 1; i >= 0; i-- {
		rec, err := r.read(ctx, keys[i])
		if errors.Is(err, storage.ErrNotFound) {
			continue // pruned meanwhile
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// newest returns job's newest record; ok is false when it has none. It reads
// one object, where Records reads them all.
func (r *Runner) newest(ctx context.Context, job string) (rec Record, ok bool, err error) {
	keys, err := r.keys(ctx, job)
	if err != nil || len(keys) == 0 {
		return rec, false, err
	}
	rec, err = r.read(ctx, keys[len(keys)-1])
	return rec, err == nil, err
}

// keys lists job's record keys, oldest first.
func (r *Runner) keys(ctx context.Context, job string) ([]string, error) {
	var keys []string
	for info, err := range r.Store.List(ctx, r.Prefix+"/"+job+"/") {
		if err != nil {
			return nil, fmt.Errorf("list the records of job %s: %w", job, err)
		}
		if strings.HasSuffix(info.Key, ".json") {
			keys = append(keys, info.Key)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// prune deletes the records beyond the History newest.
func (r *Runner) prune(ctx context.Context, job string) {
	keys, err := r.keys(ctx, job)
	if err != nil || len(keys) <= r.History {
		return
	}
	if err := r.Store.Delete(ctx, keys[:len(keys)-r.History]...); err != nil {
		r.Log.Warn("cannot delete old job records", "job", job, "err", err)
	}
}

func jitter(max config.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return rand.N(time.Duration(max))
}

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
