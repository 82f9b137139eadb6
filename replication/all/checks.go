package all

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/monitor"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/snapshots/schedule"
)

// KindReplicaCheck is the kind of scheduled replica checksum comparisons.
const KindReplicaCheck = "replica-check"

// DescribeCheck returns a cluster's scheduled check without its Run.
func DescribeCheck(cl config.Cluster) snapshots.CopyJob {
	return snapshots.CopyJob{Cluster: cl.Name, From: cl.Region, To: "replicas",
		Job: schedule.Job{Name: "check-" + cl.Name, Kind: KindReplicaCheck, Spec: cl.SyncCheck.Job}}
}

// SyncChecks runs a cluster's scheduled checksum comparisons (drd).
type SyncChecks struct {
	Cluster config.Cluster // as replication.Follow returned it
	Runner  *schedule.Runner
	Watcher *monitor.Watcher
	Log     *slog.Logger
}

// Name implements lifecycle.Component.
func (s *SyncChecks) Name() string { return "sync-check/" + s.Cluster.Name }

// Run implements lifecycle.Component.
func (s *SyncChecks) Run(ctx context.Context) error {
	job := DescribeCheck(s.Cluster).Job
	job.Run = s.check
	return s.Runner.Run(ctx, []schedule.Job{job})
}

// check compares every replica; drift is a result (metrics, detail), not a
// failure; a replica that could not be compared fails the run.
func (s *SyncChecks) check(ctx context.Context) (schedule.Result, error) {
	var details []string
	var errs []string
	for _, r := range s.Cluster.Replicas {
		rep, err := Check(ctx, s.Cluster, s.Cluster.DSN, r, s.Cluster.SyncCheck.ChunkRows, 30*time.Second, s.Log)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", r.Name, err))
			continue
		}
		s.Watcher.SetDrift(r.Name, len(rep.Diffs))
		verdict := "in sync"
		if !rep.InSync() {
			verdict = fmt.Sprintf("drift in %d chunk(s) of %s", len(rep.Diffs), strings.Join(rep.DriftTables(), ", "))
			s.Log.Warn("replica differs from the primary", "cluster", s.Cluster.Name, "replica", r.Name, "diffs", rep.Diffs)
		}
		details = append(details, fmt.Sprintf("%s: %s (%d rows)", r.Name, verdict, rep.Rows))
	}
	res := schedule.Result{Objects: len(details), Detail: strings.Join(details, "; ")}
	if len(errs) > 0 {
		return res, fmt.Errorf("could not compare %s", strings.Join(errs, "; "))
	}
	return res, nil
}
