package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/monitor"
	"github.com/drkit/drkit/replication"
	replall "github.com/drkit/drkit/replication/all"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/snapshots/schedule"
	"github.com/drkit/drkit/storage"
)

// catalogEvery is how often drd re-reads the replication catalog.
const catalogEvery = 15 * time.Second

// clusterView returns cl as the replication catalog has it: the newest
// recorded promotion's primary (drctl promote) and the registered replicas
// merged with the config's. An unreadable catalog leaves the config as is.
func clusterView(ctx context.Context, cl config.Cluster, to []*storage.Region, log *slog.Logger) (config.Cluster, *catalogWatch) {
	cw := &catalogWatch{cat: &replication.Catalog{Cluster: cl.Name, Regions: to, Log: log}, config: cl, log: log}
	v, err := cw.cat.View(ctx, cl)
	if err != nil {
		log.Warn("the replication catalog could not be read; using the config's primary and replicas", "cluster", cl.Name, "err", err)
		v = replication.View{PrimaryDSN: cl.DSN, PrimaryRegion: cl.Region, Replicas: cl.Replicas, Records: map[string]replication.Record{}}
	}
	if v.Promotion != nil {
		log.Info("following the recorded promotion: the primary is the promoted replica", "cluster", cl.Name,
			"replica", v.Promotion.Replica, "region", v.PrimaryRegion, "at", v.Promotion.At)
	}
	cw.start = v
	cw.records.Store(&v.Records)
	cl.DSN, cl.Region, cl.Replicas = v.PrimaryDSN, v.PrimaryRegion, v.Replicas
	return cl, cw
}

// catalogWatch re-reads the replication catalog: records feed the replicas'
// lifecycle states, and a new promotion or a changed set of replicas stops
// drd cleanly (shippers hand over what they hold) and restarts it on the new
// primary and replicas (see restart in main.go).
type catalogWatch struct {
	cat     *replication.Catalog
	config  config.Cluster
	start   replication.View
	records atomic.Pointer[map[string]replication.Record]
	log     *slog.Logger
}

// Name implements lifecycle.Component.
func (c *catalogWatch) Name() string { return "replication-catalog/" + c.config.Name }

// Run implements lifecycle.Component.
func (c *catalogWatch) Run(ctx context.Context) error {
	t := time.NewTicker(catalogEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v, err := c.cat.View(ctx, c.config)
		if err != nil {
			c.log.Debug("replication catalog not readable", "cluster", c.config.Name, "err", err)
			continue
		}
		c.records.Store(&v.Records)
		if changed := c.changed(v); changed != "" {
			return newShape{changed}
		}
	}
}

// newShape is catalogWatch's reason to stop: drd restarts on the cluster's
// new shape.
type newShape struct{ what string }

func (n newShape) Error() string { return n.what + ": drd restarts on the cluster's new shape" }

// changed says what differs from the view drd started with, "" if nothing
// that needs a restart.
func (c *catalogWatch) changed(v replication.View) string {
	if v.Promotion != nil && (c.start.Promotion == nil || !v.Promotion.At.Equal(c.start.Promotion.At)) {
		return fmt.Sprintf("cluster %s: replica %s was promoted to primary at %s", c.config.Name, v.Promotion.Replica, v.Promotion.At.Format(time.RFC3339))
	}
	names := func(rs []config.Replica) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.Name
		}
		slices.Sort(out)
		return out
	}
	if was, now := names(c.start.Replicas), names(v.Replicas); !slices.Equal(was, now) {
		return fmt.Sprintf("cluster %s: its replicas changed from [%s] to [%s]", c.config.Name, strings.Join(was, " "), strings.Join(now, " "))
	}
	return ""
}

// lifecycle is the replica's lifecycle state from its record and probe.
func (c *catalogWatch) lifecycle(s monitor.ServerState) string {
	recs := *c.records.Load()
	if rec, ok := recs[s.Replica]; ok {
		return replication.State(&rec, &s)
	}
	return replication.State(nil, &s)
}

// KindReplicaCheck is the kind of scheduled replica checksum comparisons.
const KindReplicaCheck = "replica-check"

// describeCheck returns a cluster's scheduled check without its Run.
func describeCheck(cl config.Cluster) snapshots.CopyJob {
	return snapshots.CopyJob{Cluster: cl.Name, From: cl.Region, To: "replicas",
		Job: schedule.Job{Name: "check-" + cl.Name, Kind: KindReplicaCheck, Spec: cl.SyncCheck.Job}}
}

// syncChecks runs a cluster's scheduled checksum comparisons.
type syncChecks struct {
	cl     config.Cluster // as clusterView returned it
	runner *schedule.Runner
	w      *monitor.Watcher
	log    *slog.Logger
}

// Name implements lifecycle.Component.
func (s *syncChecks) Name() string { return "sync-check/" + s.cl.Name }

// Run implements lifecycle.Component.
func (s *syncChecks) Run(ctx context.Context) error {
	job := describeCheck(s.cl).Job
	job.Run = s.check
	return s.runner.Run(ctx, []schedule.Job{job})
}

// check compares every replica; drift is a result (metrics, detail), not a
// failure; a replica that could not be compared fails the run.
func (s *syncChecks) check(ctx context.Context) (schedule.Result, error) {
	var details []string
	var errs []string
	for _, r := range s.cl.Replicas {
		rep, err := replall.Check(ctx, s.cl, s.cl.DSN, r, s.cl.SyncCheck.ChunkRows, 30*time.Second, s.log)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", r.Name, err))
			continue
		}
		s.w.SetDrift(r.Name, len(rep.Diffs))
		verdict := "in sync"
		if !rep.InSync() {
			verdict = fmt.Sprintf("drift in %d chunk(s) of %s", len(rep.Diffs), strings.Join(rep.DriftTables(), ", "))
			s.log.Warn("replica differs from the primary", "cluster", s.cl.Name, "replica", r.Name, "diffs", rep.Diffs)
		}
		details = append(details, fmt.Sprintf("%s: %s (%d rows)", r.Name, verdict, rep.Rows))
	}
	res := schedule.Result{Objects: len(details), Detail: strings.Join(details, "; ")}
	if len(errs) > 0 {
		return res, fmt.Errorf("could not compare %s", strings.Join(errs, "; "))
	}
	return res, nil
}
