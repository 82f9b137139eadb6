package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"
)

// Job is a piece of work started through the API.
type Job struct {
	ID       string     `json:"id"`
	Kind     string     `json:"kind"`
	Cluster  string     `json:"cluster"`
	State    string     `json:"state"` // running, succeeded, failed, canceled
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	// Result is the job's outcome, for a backup its id.
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

// keepJobs bounds how many finished jobs are remembered.
const keepJobs = 100

// jobs tracks the jobs of one drd process (not across restarts: a backup's
// result is in the stores either way).
type jobs struct {
	mu   sync.Mutex
	list []*Job
}

// start runs fn in the background under ctx (drd's lifetime) and returns the job.
func (j *jobs) start(ctx context.Context, kind, cluster string, fn func(context.Context) (string, error)) Job {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	job := &Job{ID: hex.EncodeToString(b), Kind: kind, Cluster: cluster, State: "running", Started: time.Now().UTC()}
	j.mu.Lock()
	j.list = append(j.list, job)
	j.trim()
	snapshot := *job
	j.mu.Unlock()
	go func() {
		res, err := fn(ctx)
		j.mu.Lock()
		defer j.mu.Unlock()
		now := time.Now().UTC()
		job.Finished, job.Result = &now, res
		switch {
		case errors.Is(err, context.Canceled):
			job.State, job.Error = "canceled", "drd stopped"
		case err != nil:
			job.State, job.Error = "failed", err.Error()
		default:
			job.State = "succeeded"
		}
	}()
	return snapshot
}

// trim drops the oldest finished jobs beyond keepJobs.
func (j *jobs) trim() {
	for len(j.list) > keepJobs {
		i := slices.IndexFunc(j.list, func(x *Job) bool { return x.State != "running" })
		if i < 0 {
			return
		}
		j.list = slices.Delete(j.list, i, i+1)
	}
}

func (j *jobs) get(id string) (Job, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, x := range j.list {
		if x.ID == id {
			return *x, true
		}
	}
	return Job{}, false
}

func (j *jobs) all() []Job {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Job, len(j.list))
	for i, x := range j.list {
		out[i] = *x
	}
	return out
}
