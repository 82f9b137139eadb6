package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/monitor"
)

func exec(t *testing.T, dsn, q string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// beatFor writes heartbeats every 200ms for d.
func beatFor(t *testing.T, h *Heartbeat, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if err := h.Beat(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

func replicaState(t *testing.T, p *Prober) monitor.ServerState {
	t.Helper()
	states := p.Probe(context.Background())
	if len(states) != 2 || !states[0].Up {
		t.Fatalf("primary: %+v", states)
	}
	return states[1]
}

// TestProbeStandby follows a real standby through caught-up, paused replay,
// resumed replay, promotion and death.
func TestProbeStandby(t *testing.T) {
	pg := testenv.StartPostgres(t)
	sb := pg.StartStandby(t)
	dsn := pg.DSN("postgres")
	h, err := NewHeartbeat("orders", "drkit_heartbeat", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, err := NewProber("orders", "drkit_heartbeat", Server{Region: "a", DSN: dsn},
		[]Server{{Name: "sb", Region: "b", DSN: sb.DSN("postgres")}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	beatFor(t, h, time.Second)
	st := replicaState(t, p)
	if !st.Up || !st.LinkUp || !st.Applying || !st.InSync || st.LagSource != "heartbeat" || st.LagSeconds == nil || *st.LagSeconds > 1 || st.LagBytes == nil {
		t.Fatalf("caught-up standby: %+v (err %s)", st, st.Error)
	}

	exec(t, sb.DSN("postgres"), "SELECT pg_wal_replay_pause()")
	exec(t, dsn, "CREATE TABLE t AS SELECT generate_series(1, 10000) AS i")
	beatFor(t, h, 3*time.Second)
	st = replicaState(t, p)
	if !st.InSync || !st.LinkUp || st.Applying || st.LagSeconds == nil || *st.LagSeconds < 2 || *st.LagBytes < 100_000 {
		t.Fatalf("paused standby: want not applying, lag ≥ 2s and ≥ 100kB, in sync: %+v lag %v bytes %v", st, deref(st.LagSeconds), deref(st.LagBytes))
	}

	exec(t, sb.DSN("postgres"), "SELECT pg_wal_replay_resume()")
	deadline := time.Now().Add(10 * time.Second)
	for {
		beatFor(t, h, 300*time.Millisecond)
		st = replicaState(t, p)
		if *st.LagSeconds < 1 && *st.LagBytes < 100_000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resumed standby did not catch up: lag %v s, %v bytes", *st.LagSeconds, *st.LagBytes)
		}
	}

	exec(t, sb.DSN("postgres"), "SELECT pg_promote()")
	deadline = time.Now().Add(10 * time.Second)
	for st = replicaState(t, p); st.InSync; st = replicaState(t, p) {
		if time.Now().After(deadline) {
			t.Fatalf("promoted standby still in sync: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(st.Error, "promoted") {
		t.Errorf("promoted standby: error %q does not say so", st.Error)
	}

	if err := sb.Kill(); err != nil {
		t.Fatal(err)
	}
	st = replicaState(t, p)
	if st.Up || st.Error == "" || st.LagSeconds != nil || st.LagBytes != nil {
		t.Fatalf("dead standby must be down with a reason and no lag: %+v", st)
	}
}

// TestProbePrimaryDown: with the primary gone, the standby is reachable but
// no lag is claimed.
func TestProbePrimaryDown(t *testing.T) {
	pg := testenv.StartPostgres(t)
	sb := pg.StartStandby(t)
	p, err := NewProber("orders", "", Server{Region: "a", DSN: pg.DSN("postgres")},
		[]Server{{Name: "sb", Region: "b", DSN: sb.DSN("postgres")}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	states := p.Probe(context.Background())
	if states[0].Up || states[0].Error == "" {
		t.Fatalf("dead primary reported up: %+v", states[0])
	}
	if st := states[1]; !st.Up || st.LagSeconds != nil || st.LagBytes != nil || st.InSync {
		t.Fatalf("standby of a dead primary: want up, no lag, not claimed in sync: %+v", st)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
