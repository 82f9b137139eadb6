package monitor

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// staticProber returns fixed states: the collector's input, not a server.
type staticProber []ServerState

func (s staticProber) Probe(context.Context) []ServerState { return s }
func (staticProber) Close()                                {}

func TestCollectorReportsDownNotZero(t *testing.T) {
	w := &Watcher{Cluster: "orders", Engine: "postgres", Interval: time.Second, Log: slog.New(slog.DiscardHandler),
		Prober: staticProber{
			{Region: "a", Up: true},
			{Replica: "r1", Region: "b", Up: true, LinkUp: true, InSync: true, LagSeconds: Float(2.5), LagBytes: Float(4096)},
			{Replica: "r2", Region: "c", Error: "connection refused"},
			{Replica: "r3", Region: "c", Up: true, LinkUp: true, Applying: true, InSync: true},
		}}
	c := &Collector{Watchers: []*Watcher{w}}
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("before the first probe: %d series, want none", n)
	}
	w.probe(context.Background())
	want := `
# HELP drkit_replication_applying Whether the replica replays the log it receives (1) or its replay is paused or its SQL thread stopped (0).
# TYPE drkit_replication_applying gauge
drkit_replication_applying{cluster="orders",engine="postgres",region="b",replica="r1"} 0
drkit_replication_applying{cluster="orders",engine="postgres",region="c",replica="r3"} 1
# HELP drkit_replication_lag_seconds How far the replica's replay is behind the primary, in seconds (heartbeat, else the engine's view).
# TYPE drkit_replication_lag_seconds gauge
drkit_replication_lag_seconds{cluster="orders",engine="postgres",region="b",replica="r1"} 2.5
# HELP drkit_up Whether drd's last probe reached the server (1) or not (0); replica="" is the primary.
# TYPE drkit_up gauge
drkit_up{cluster="orders",engine="postgres",region="a",replica=""} 1
drkit_up{cluster="orders",engine="postgres",region="b",replica="r1"} 1
drkit_up{cluster="orders",engine="postgres",region="c",replica="r2"} 0
drkit_up{cluster="orders",engine="postgres",region="c",replica="r3"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "drkit_up", "drkit_replication_lag_seconds", "drkit_replication_applying"); err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatLag(t *testing.T) {
	now := time.Now()
	at := func(ago time.Duration) *time.Time { x := now.Add(-ago); return &x }
	for _, c := range []struct {
		name             string
		primary, replica *time.Time
		lag              float64
		ok               bool
	}{
		{"caught up", at(time.Second), at(time.Second), 0, true},
		{"behind", at(time.Second), at(31 * time.Second), 30, true},
		{"replica ahead of the read primary", at(2 * time.Second), at(time.Second), 0, true},
		{"stale primary heartbeat", at(time.Minute), at(2 * time.Minute), 0, false},
		{"no replica heartbeat", at(time.Second), nil, 0, false},
	} {
		lag, ok := HeartbeatLag(now, c.primary, c.replica)
		if lag != c.lag || ok != c.ok {
			t.Errorf("%s: got %v %v, want %v %v", c.name, lag, ok, c.lag, c.ok)
		}
	}
}

func TestCollectorDriftClearsInSyncAndStateIsExported(t *testing.T) {
	w := &Watcher{Cluster: "shop", Engine: "mysql", Interval: time.Second, Log: slog.New(slog.DiscardHandler),
		Prober: staticProber{
			{Region: "a", Up: true},
			{Replica: "r1", Region: "b", Up: true, LinkUp: true, InSync: true},
			{Replica: "r2", Region: "c", Up: true, LinkUp: true, InSync: true},
		},
		Lifecycle: func(s ServerState) string {
			if s.Replica == "r1" {
				return "streaming"
			}
			return "catching_up"
		}}
	w.SetDrift("r2", 3)
	w.probe(context.Background())
	want := `
# HELP drkit_replica_drift_chunks How many key-range chunks differed from the primary at drd's last checksum comparison (sync_check); 0 is in sync.
# TYPE drkit_replica_drift_chunks gauge
drkit_replica_drift_chunks{cluster="shop",engine="mysql",region="c",replica="r2"} 3
# HELP drkit_replica_in_sync Whether the replica follows this primary and can converge on it (same system, no apply error, no transactions of its own) and its last checksum comparison found no drift. Lag alone does not clear it.
# TYPE drkit_replica_in_sync gauge
drkit_replica_in_sync{cluster="shop",engine="mysql",region="b",replica="r1"} 1
drkit_replica_in_sync{cluster="shop",engine="mysql",region="c",replica="r2"} 0
# HELP drkit_replica_state 1 for the replica's lifecycle state, named by kind: creating, catching_up, streaming or broken.
# TYPE drkit_replica_state gauge
drkit_replica_state{cluster="shop",engine="mysql",kind="catching_up",region="c",replica="r2"} 1
drkit_replica_state{cluster="shop",engine="mysql",kind="streaming",region="b",replica="r1"} 1
`
	if err := testutil.CollectAndCompare(&Collector{Watchers: []*Watcher{w}}, strings.NewReader(want),
		"drkit_replica_drift_chunks", "drkit_replica_in_sync", "drkit_replica_state"); err != nil {
		t.Fatal(err)
	}
}

// countingProber counts its probes.
type countingProber struct{ n atomic.Int32 }

func (p *countingProber) Probe(context.Context) []ServerState {
	p.n.Add(1)
	return []ServerState{{Region: "a", Up: true}}
}
func (*countingProber) Close() {}

// TestScrapeRefreshesStaleProbes: a scrape probes again when the latest
// probe is older than MaxAge, not when it is fresh, and never once the
// watcher has stopped (its prober is closed).
func TestScrapeRefreshesStaleProbes(t *testing.T) {
	p := &countingProber{}
	w := &Watcher{Cluster: "orders", Engine: "postgres", Interval: time.Hour, Prober: p, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	for p.n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	c := &Collector{Watchers: []*Watcher{w}, MaxAge: 50 * time.Millisecond}
	testutil.CollectAndCount(c)
	if n := p.n.Load(); n != 1 {
		t.Fatalf("a fresh probe was repeated at the scrape: %d probes", n)
	}
	time.Sleep(60 * time.Millisecond)
	testutil.CollectAndCount(c)
	if n := p.n.Load(); n != 2 {
		t.Fatalf("a stale probe was not refreshed at the scrape: %d probes", n)
	}
	cancel()
	<-done
	time.Sleep(60 * time.Millisecond)
	testutil.CollectAndCount(c)
	if n := p.n.Load(); n != 2 {
		t.Fatalf("a stopped watcher probed at a scrape: %d probes", n)
	}
}

// hangingProber answers its first probe, then hangs until released: a
// server behind a partition.
type hangingProber struct {
	n       atomic.Int32
	release chan struct{}
}

func (p *hangingProber) Probe(ctx context.Context) []ServerState {
	if p.n.Add(1) > 1 {
		select {
		case <-p.release:
		case <-ctx.Done():
		}
	}
	return []ServerState{{Region: "a", Up: true}}
}
func (*hangingProber) Close() {}

// TestScrapeDoesNotWaitForAHungServer: a scrape whose refresh hangs
// exports the latest state after scrapeWait instead of timing out.
func TestScrapeDoesNotWaitForAHungServer(t *testing.T) {
	p := &hangingProber{release: make(chan struct{})}
	defer close(p.release)
	w := &Watcher{Cluster: "orders", Engine: "postgres", Interval: time.Hour, Prober: p, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	for p.n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	c := &Collector{Watchers: []*Watcher{w}, MaxAge: 10 * time.Millisecond}
	began := time.Now()
	if n := testutil.CollectAndCount(c, "drkit_up"); n != 1 {
		t.Fatalf("the scrape exported %d drkit_up series, want the latest state's 1", n)
	}
	if took := time.Since(began); took > scrapeWait+time.Second || p.n.Load() != 2 {
		t.Fatalf("a hung refresh held the scrape for %s (probes %d)", took, p.n.Load())
	}
}
