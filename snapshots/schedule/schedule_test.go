package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

func newStore(t *testing.T) storage.Store {
	t.Helper()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func runFor(t *testing.T, r *Runner, d time.Duration, jobs ...Job) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := r.Run(ctx, jobs); err != nil {
		t.Fatal(err)
	}
}

func TestRunsRecordsAndKeepsHistory(t *testing.T) {
	st := newStore(t)
	var runs atomic.Int32
	var done []Record
	var mu sync.Mutex
	r := &Runner{Store: st, History: 2, Done: func(_ Job, rec Record) { mu.Lock(); done = append(done, rec); mu.Unlock() }}
	job := Job{Name: "copy-a-b", Kind: "backup-set", Spec: config.Job{Schedule: "@every 1s", CatchUp: "skip"},
		Run: func(context.Context) (Result, error) {
			n := runs.Add(1)
			if n == 2 {
				return Result{Objects: 1}, errors.New("target region down")
			}
			return Result{Objects: 3, Bytes: 42}, nil
		}}
	runFor(t, r, 3600*time.Millisecond, job)
	if n := runs.Load(); n < 3 {
		t.Fatalf("the job ran %d times in 3.6s on @every 1s, want at least 3", n)
	}
	recs, err := r.Records(context.Background(), job.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records kept, want History=2", len(recs))
	}
	if !recs[0].Activation.After(recs[1].Activation) {
		t.Fatalf("records not newest first: %v then %v", recs[0].Activation, recs[1].Activation)
	}
	for _, rec := range recs {
		if rec.Status != StatusOK && rec.Status != StatusFailed || rec.End.IsZero() || rec.Kind != "backup-set" {
			t.Fatalf("record not finished: %+v", rec)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(done) != int(runs.Load()) {
		t.Fatalf("Done called %d times for %d runs", len(done), runs.Load())
	}
	if done[1].Status != StatusFailed || done[1].Error != "target region down" || done[1].Objects != 1 {
		t.Fatalf("the failed run's record: %+v", done[1])
	}
	if done[0].Status != StatusOK || done[0].Bytes != 42 {
		t.Fatalf("the first run's record: %+v", done[0])
	}
}

// seed writes a finished record as if a drd had run the job at activation.
func seed(t *testing.T, r *Runner, job string, activation time.Time, status string) {
	t.Helper()
	r.init()
	rec := Record{Job: job, Activation: activation, Instance: "old-drd", Status: status, Start: activation, Renewed: activation}
	if err := r.write(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

func TestCatchUp(t *testing.T) {
	yearly := "0 0 1 1 *" // the next activation is months away: only a catch-up can run
	for _, tc := range []struct {
		policy string
		want   int32
	}{{"once", 1}, {"skip", 0}} {
		t.Run(tc.policy, func(t *testing.T) {
			r := &Runner{Store: newStore(t)}
			lastRun := time.Date(time.Now().Year()-3, 1, 1, 0, 0, 0, 0, time.Local)
			seed(t, r, "images", lastRun, StatusOK)
			var runs atomic.Int32
			job := Job{Name: "images", Spec: config.Job{Schedule: yearly, CatchUp: tc.policy},
				Run: func(context.Context) (Result, error) { runs.Add(1); return Result{}, nil }}
			runFor(t, r, 1500*time.Millisecond, job)
			if got := runs.Load(); got != tc.want {
				t.Fatalf("catch_up %s after 3 missed activations: %d runs, want %d", tc.policy, got, tc.want)
			}
			if tc.want == 0 {
				return
			}
			recs, _ := r.Records(context.Background(), "images")
			want := time.Date(time.Now().Year(), 1, 1, 0, 0, 0, 0, time.Local)
			if len(recs) != 2 || !recs[0].CatchUp || !recs[0].Activation.Equal(want) {
				t.Fatalf("the catch-up record: %+v, want activation %v (the latest missed)", recs, want)
			}
		})
	}
}

func TestTwoInstancesRunEachActivationOnce(t *testing.T) {
	st := newStore(t)
	var mu sync.Mutex
	byActivation := map[string][]string{}
	mkJob := func(instance string) Job {
		return Job{Name: "copy", Spec: config.Job{Schedule: "@every 1s", CatchUp: "skip"},
			Run: func(context.Context) (Result, error) {
				time.Sleep(200 * time.Millisecond)
				mu.Lock()
				defer mu.Unlock()
				at := time.Now().Truncate(time.Second).Format(time.TimeOnly)
				byActivation[at] = append(byActivation[at], instance)
				return Result{}, nil
			}}
	}
	var wg sync.WaitGroup
	for _, inst := range []string{"drd-1", "drd-2"} {
		r := &Runner{Store: st, Instance: inst}
		wg.Go(func() { runFor(t, r, 4*time.Second, mkJob(inst)) })
	}
	wg.Wait()
	if len(byActivation) < 3 {
		t.Fatalf("only %d activations ran in 4s", len(byActivation))
	}
	for at, who := range byActivation {
		if len(who) != 1 {
			t.Fatalf("activation %s ran %d times (%v), want once", at, len(who), who)
		}
	}
}

func TestRunningRecordBlocksUntilStale(t *testing.T) {
	st := newStore(t)
	r := &Runner{Store: st, Renew: 100 * time.Millisecond}
	r.init()
	job := Job{Name: "snap", Spec: config.Job{Schedule: "@hourly", CatchUp: "skip"},
		Run: func(context.Context) (Result, error) { return Result{Objects: 1}, nil }}
	live := Record{Job: "snap", Activation: time.Now().Add(-time.Minute).Truncate(time.Second), Instance: "other", Status: StatusRunning,
		Start: time.Now().Add(-time.Minute), Renewed: time.Now()}
	if err := r.write(context.Background(), live); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Now().Truncate(time.Second) }
	if held, ran := r.activate(context.Background(), job, now(), false); ran || held.Instance != "other" {
		t.Fatalf("a run while another instance's run is alive: ran %v, held by %q; want refused, held by other", ran, held.Instance)
	}
	time.Sleep(400 * time.Millisecond) // > 3 × Renew without renewal: that drd died
	if rec, ran := r.activate(context.Background(), job, now(), false); !ran || rec.Status != StatusOK {
		t.Fatalf("a run after the other run went stale: ran %v, %+v", ran, rec)
	}
}

func TestLongRunRenewsItsRecord(t *testing.T) {
	st := newStore(t)
	r := &Runner{Store: st, Renew: 50 * time.Millisecond}
	seen := make(chan Record, 1)
	job := Job{Name: "long", Spec: config.Job{Schedule: "@hourly", CatchUp: "skip"},
		Run: func(ctx context.Context) (Result, error) {
			time.Sleep(300 * time.Millisecond)
			recs, err := r.Records(ctx, "long")
			if err != nil || len(recs) != 1 {
				return Result{}, errors.New("no record while running")
			}
			seen <- recs[0]
			return Result{}, nil
		}}
	r.init()
	if rec, ran := r.activate(context.Background(), job, time.Now().Truncate(time.Second), false); !ran || rec.Status != StatusOK {
		t.Fatalf("the long run: ran %v, %+v", ran, rec)
	}
	rec := <-seen
	if rec.Status != StatusRunning || rec.Renewed.Sub(rec.Start) < 100*time.Millisecond {
		t.Fatalf("record during a 300ms run with Renew=50ms: %+v; want running and renewed", rec)
	}
	b, _ := json.Marshal(rec)
	if !strings.Contains(string(b), `"instance"`) {
		t.Fatalf("record JSON lacks the instance: %s", b)
	}
}
