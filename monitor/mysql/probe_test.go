package mysql

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/monitor"
)

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

func val(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}

// TestProbeReplica follows a real MariaDB replica through caught-up, a
// stopped SQL thread, a restart, a write on the replica and death.
func TestProbeReplica(t *testing.T) {
	primary := testenv.StartMariaDB(t)
	replica := primary.StartReplica(t)
	pdb, rdb := primary.Open(t, ""), replica.Open(t, "")
	h, err := NewHeartbeat("shop", "drkit.heartbeat", primary.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, err := NewProber("shop", "drkit.heartbeat", Server{Region: "a", DSN: primary.DSN("")},
		[]Server{{Name: "r1", Region: "b", DSN: replica.DSN("")}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	beatFor(t, h, time.Second)
	st := replicaState(t, p)
	if !st.Up || !st.LinkUp || !st.Applying || !st.InSync || st.LagSource != "heartbeat" || val(st.LagSeconds) > 1 || val(st.LagBytes) != 0 || val(st.LagTransactions) != 0 {
		t.Fatalf("caught-up replica: %+v lag %v s %v B %v txns", st, val(st.LagSeconds), val(st.LagBytes), val(st.LagTransactions))
	}

	testenv.Exec(t, rdb, "STOP SLAVE SQL_THREAD")
	testenv.Exec(t, pdb, "CREATE DATABASE test")
	testenv.Exec(t, pdb, "CREATE TABLE test.t (i INT PRIMARY KEY)")
	testenv.Exec(t, pdb, "INSERT INTO test.t VALUES (1), (2)")
	beatFor(t, h, 3*time.Second)
	st = replicaState(t, p)
	if !st.InSync || !st.LinkUp || st.Applying || val(st.LagSeconds) < 2 || val(st.LagBytes) <= 0 || val(st.LagTransactions) < 4 {
		t.Fatalf("stopped SQL thread: want in sync, not applying, lag ≥ 2 s, > 0 B, ≥ 4 txns: %+v lag %v s %v B %v txns", st, val(st.LagSeconds), val(st.LagBytes), val(st.LagTransactions))
	}

	testenv.Exec(t, rdb, "START SLAVE SQL_THREAD")
	deadline := time.Now().Add(10 * time.Second)
	for {
		beatFor(t, h, 300*time.Millisecond)
		st = replicaState(t, p)
		if val(st.LagSeconds) < 1 && val(st.LagTransactions) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted replica did not catch up: %+v", st)
		}
	}

	testenv.Exec(t, rdb, "INSERT INTO test.t VALUES (99)") // an errant write on the replica
	st = replicaState(t, p)
	if st.InSync || !strings.Contains(st.Error, "written on the replica") {
		t.Fatalf("replica with its own write: want out of sync, saying why: %+v", st)
	}

	if err := replica.Kill(); err != nil {
		t.Fatal(err)
	}
	st = replicaState(t, p)
	if st.Up || st.Error == "" || st.LagSeconds != nil || st.LagTransactions != nil {
		t.Fatalf("dead replica must be down with a reason and no lag: %+v", st)
	}
}
