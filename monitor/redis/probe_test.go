package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/monitor"
)

func val(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}

func beatFor(t *testing.T, h *Heartbeat, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if err := h.Beat(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProbeReplica follows a real Redis replica, linked to its primary
// through a proxy, through caught-up, a cut link, catching up, following
// another primary and death.
func TestProbeReplica(t *testing.T) {
	prim, rep, other := &testenv.Redis{Password: "pw"}, &testenv.Redis{Password: "pw"}, &testenv.Redis{Password: "pw"}
	testenv.Start(t, prim, rep, other)
	ctx := context.Background()
	link := testenv.NewProxy(t, prim.Addr())
	rc := rep.Client(t)
	host, port, _ := strings.Cut(link.Addr, ":")
	if err := rc.ReplicaOf(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	const key = "drkit_heartbeat:cache"
	h, err := NewHeartbeat(key, prim.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, err := NewProber(key, Server{Region: "eu", DSN: prim.URL()}, []Server{{Name: "us-1", Region: "us", DSN: rep.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	probe := func() monitor.ServerState {
		t.Helper()
		states := p.Probe(ctx)
		if len(states) != 2 || !states[0].Up {
			t.Fatalf("primary: %+v", states)
		}
		return states[1]
	}
	var st monitor.ServerState
	testenv.WaitFor(t, 10*time.Second, "the replica links and catches up", func() bool {
		beatFor(t, h, 300*time.Millisecond)
		st = probe()
		return st.LinkUp && val(st.LagBytes) == 0
	})
	if !st.Up || !st.InSync || !st.Applying || st.LagSource != "heartbeat" || val(st.LagSeconds) > 1 {
		t.Fatalf("caught-up replica: %+v lag %v s", st, val(st.LagSeconds))
	}

	link.Down()
	pc := prim.Client(t)
	for i := range 100 {
		pc.Set(ctx, "k"+strconv.Itoa(i), i, 0)
	}
	beatFor(t, h, 3*time.Second)
	st = probe()
	if !st.Up || st.LinkUp || !st.InSync || val(st.LagBytes) <= 0 || val(st.LagSeconds) < 2 || st.LagSource != "heartbeat" {
		t.Fatalf("cut link: want up, link down, in sync, lag > 0 B and ≥ 2 s: %+v lag %v s %v B", st, val(st.LagSeconds), val(st.LagBytes))
	}

	link.Up(t)
	testenv.WaitFor(t, 20*time.Second, "the replica catches up after the link is back", func() bool {
		beatFor(t, h, 300*time.Millisecond)
		st = probe()
		return st.LinkUp && val(st.LagBytes) == 0 && val(st.LagSeconds) < 1
	})

	// Without the heartbeat, a caught-up replica has lag 0 from the offsets.
	nohb, err := NewProber("", Server{Region: "eu", DSN: prim.URL()}, []Server{{Name: "us-1", Region: "us", DSN: rep.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	defer nohb.Close()
	if st := nohb.Probe(ctx)[1]; st.LagSource != "engine" || val(st.LagSeconds) != 0 {
		t.Fatalf("caught up without heartbeat: %+v", st)
	}

	if err := rc.ReplicaOf(ctx, "127.0.0.1", strconv.Itoa(other.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the replica follows the other primary", func() bool {
		st = probe()
		return st.LinkUp
	})
	if st.InSync || !strings.Contains(st.Error, "replication history") || st.LagBytes != nil {
		t.Fatalf("replica of another primary: want out of sync, saying why, no lag: %+v", st)
	}

	if err := rep.Kill(); err != nil {
		t.Fatal(err)
	}
	st = probe()
	if st.Up || st.Error == "" || st.LagSeconds != nil || st.LagBytes != nil {
		t.Fatalf("dead replica must be down with a reason and no lag: %+v", st)
	}

	// A primary that is a replica is reported down, not probed as healthy.
	wrong, err := NewProber("", Server{Region: "eu", DSN: other.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if err := other.Client(t).ReplicaOf(ctx, "127.0.0.1", strconv.Itoa(prim.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	if st := wrong.Probe(ctx)[0]; st.Up || !strings.Contains(st.Error, "not a primary") {
		t.Fatalf("primary that replicates: %+v", st)
	}
}
