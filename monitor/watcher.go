package monitor

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Watcher probes one cluster every Interval and keeps its heartbeat going;
// it is a lifecycle component of drd.
type Watcher struct {
	Cluster, Engine string
	// Interval between probes.
	Interval time.Duration
	Prober   Prober
	// Heart is nil when the heartbeat is off.
	Heart Heartbeater
	// Errors counts failed heartbeats (kind heartbeat); may be nil.
	Errors *prometheus.CounterVec
	Log    *slog.Logger
	// Lifecycle, if set, names each replica's lifecycle state from its probe
	// (drd derives it with the replication catalog's records).
	Lifecycle func(ServerState) string

	state atomic.Pointer[ClusterState]
	// probing is held while a probe runs, so that the interval's probe and
	// a scrape's refresh never probe the servers twice at once.
	probing sync.Mutex
	running atomic.Bool // between Run's start and its closing the prober
	mu      sync.Mutex
	drift   map[string]int
}

// SetDrift records how many chunks of replica differed at the last checksum
// comparison; the next probe reports it.
func (w *Watcher) SetDrift(replica string, chunks int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.drift == nil {
		w.drift = map[string]int{}
	}
	w.drift[replica] = chunks
}

// annotate adds drift and lifecycle state to the replicas' probe results.
func (w *Watcher) annotate(servers []ServerState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range servers {
		s := &servers[i]
		if s.Replica == "" {
			continue
		}
		if n, ok := w.drift[s.Replica]; ok {
			s.DriftChunks = &n
		}
		if w.Lifecycle != nil {
			s.State = w.Lifecycle(*s)
		}
	}
}

// Name implements lifecycle.Component.
func (w *Watcher) Name() string { return "monitor " + w.Cluster }

// State returns the latest probe's result (empty before the first).
func (w *Watcher) State() ClusterState {
	if s := w.state.Load(); s != nil {
		return *s
	}
	return ClusterState{Cluster: w.Cluster, Engine: w.Engine}
}

// Run probes until ctx is done.
func (w *Watcher) Run(ctx context.Context) error {
	w.running.Store(true)
	defer func() {
		w.running.Store(false)
		w.probing.Lock() // a scrape's probe in flight finishes first
		defer w.probing.Unlock()
		w.Prober.Close()
	}()
	if w.Heart != nil {
		defer w.Heart.Close()
		go w.beat(ctx)
	}
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		// Scrapes refresh the state too; probe only if none did lately.
		w.Refresh(ctx, w.Interval*3/4)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Refresh probes now unless the latest probe is younger than maxAge or a
// probe is running (its result is as fresh). The collector calls it at each
// scrape, so a scraped state is at most maxAge old: an alert then waits for
// the scrape and the rule evaluation, not also for the next interval.
func (w *Watcher) Refresh(ctx context.Context, maxAge time.Duration) {
	if s := w.state.Load(); s != nil && time.Since(s.At) < maxAge {
		return
	}
	if !w.probing.TryLock() {
		return
	}
	defer w.probing.Unlock()
	if w.running.Load() {
		w.probe(ctx)
	}
}

// probe runs one probe bounded by the interval, so a hung server delays no
// later probe.
func (w *Watcher) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, w.Interval)
	defer cancel()
	servers := w.Prober.Probe(pctx)
	if ctx.Err() != nil {
		return
	}
	w.annotate(servers)
	w.state.Store(&ClusterState{Cluster: w.Cluster, Engine: w.Engine, At: time.Now(), Servers: servers})
	for _, s := range servers {
		if !s.Up {
			w.Log.Debug("probe: server down", "cluster", w.Cluster, "replica", s.Replica, "err", s.Error)
		}
	}
}

// beat writes the heartbeat every BeatInterval. Failures are logged once per
// change of error text, so a down primary does not flood the log.
func (w *Watcher) beat(ctx context.Context) {
	t := time.NewTicker(BeatInterval)
	defer t.Stop()
	var lastErr string
	for {
		bctx, cancel := context.WithTimeout(ctx, BeatInterval)
		err := w.Heart.Beat(bctx, time.Now())
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if w.Errors != nil {
				w.Errors.WithLabelValues(w.Cluster, "", "heartbeat").Inc()
			}
			if err.Error() != lastErr {
				w.Log.Warn("heartbeat write failed; lag falls back to the engine's view", "cluster", w.Cluster, "err", err)
			}
			lastErr = err.Error()
		case lastErr != "":
			w.Log.Info("heartbeat writes again", "cluster", w.Cluster)
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
