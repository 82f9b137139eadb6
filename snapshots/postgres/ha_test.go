package postgres_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/testenv"
)

// leaseHeld reads drd's drkit_lease_holder for cluster orders (-1 unreadable).
func leaseHeld(addr string) int {
	v, ok := testenv.Metric(addr, `drkit_lease_holder{cluster="orders"}`)
	if !ok {
		return -1
	}
	return int(v)
}

// startNamedDrd runs drd on a free port logging into the work folder's file
// name, and returns it and its address.
func (e *env) startNamedDrd(t *testing.T, name string) (*exec.Cmd, string) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	return e.startDrdLogAt(t, addr, name), addr
}

// TestThreeDrdHoldTheSlot: three drd with drd.ha ship a PostgreSQL cluster
// under writes. The holder is SIGKILLed: another takes the lease and streams
// from the slot within the TTL. That one is SIGSTOPped for three TTLs: its
// walsender would keep the slot busy until wal_sender_timeout (60 s), but
// the third takes the lease within the TTL, ends that walsender and streams.
// After SIGCONT the paused one stands by and exactly one drd holds the
// lease; drctl verify passes, and a restore from region us holds every row
// written, each once.
func TestThreeDrdHoldTheSlot(t *testing.T) {
	const ttl = 2 * time.Second
	e := newEnv(t)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e.writeConfig(t, "drd: {ha: true, lease_ttl: 2s}\n"+string(cfg))
	ctx := context.Background()
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE events (id int PRIMARY KEY)")
	type drd struct {
		cmd  *exec.Cmd
		addr string
	}
	ds := make([]drd, 3)
	for i := range ds {
		ds[i].cmd, ds[i].addr = e.startNamedDrd(t, fmt.Sprintf("drd-%d.log", i))
	}
	holder := func(skip ...int) int { // the one holding, -1 while not exactly one does
		h, n := -1, 0
		for i, d := range ds {
			if slices.Contains(skip, i) {
				continue
			}
			if leaseHeld(d.addr) == 1 {
				h, n = i, n+1
			}
		}
		if n != 1 {
			return -1
		}
		return h
	}
	var h int
	testenv.WaitFor(t, 30*time.Second, "one of three drd holds the lease", func() bool { h = holder(); return h >= 0 })
	e.backup(t)
	stopWriter := startEventWriter(t, e.pg.DSN("postgres"))
	time.Sleep(2 * time.Second)
	// streamer is the pid of the walsender streaming from drd's slot (0 if none).
	streamer := func() int32 {
		var pid *int32
		_ = conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'drkit_orders'").Scan(&pid)
		if pid == nil {
			return 0
		}
		return *pid
	}
	// takeOver waits until a drd other than skip holds the lease and a new
	// walsender streams from the slot, and returns how long that took.
	takeOver := func(what string, since time.Time, old int32, skip ...int) time.Duration {
		var took time.Duration
		testenv.WaitFor(t, 30*time.Second, what, func() bool {
			if h = holder(skip...); h < 0 {
				return false
			}
			if pid := streamer(); pid == 0 || pid == old {
				return false // still the old holder's walsender
			}
			took = time.Since(since)
			return true
		})
		return took
	}

	killed, old := time.Now(), streamer()
	if old == 0 {
		t.Fatal("no walsender streams from drd's slot before the kill")
	}
	_ = ds[h].cmd.Process.Kill()
	dead := h
	tookKill := takeOver("another drd takes the lease and the slot after the SIGKILL", killed, old, dead)

	time.Sleep(2 * time.Second)
	paused := h
	stopped, old := time.Now(), streamer()
	if old == 0 {
		t.Fatal("no walsender streams from drd's slot before the SIGSTOP")
	}
	if err := ds[paused].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	tookStop := takeOver("the third drd takes the lease and the slot from the paused one", stopped, old, dead, paused)
	time.Sleep(3*ttl - time.Since(stopped)) // as in a long GC or a partition
	if err := ds[paused].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "after SIGCONT the paused drd stands by and exactly one holds", func() bool {
		return leaseHeld(ds[paused].addr) == 0 && holder(dead) == h
	})
	time.Sleep(2 * time.Second)
	n := stopWriter()
	t.Logf("the slot streamed to a new holder %v after the SIGKILL, %v after the SIGSTOP (lease_ttl %v); %d rows written",
		tookKill.Round(time.Millisecond), tookStop.Round(time.Millisecond), ttl, n)
	for what, took := range map[string]time.Duration{"SIGKILL": tookKill, "SIGSTOP": tookStop} {
		if took > ttl+3*time.Second {
			t.Errorf("the takeover after %s took %v, want within the TTL (%v) and a few polls, not the walsender's 60 s timeout", what, took, ttl)
		}
	}
	e.waitShipped(t, conn)
	if out, code := e.drctlRun(t, "verify", "--cluster", "orders", "--region", "us"); code != 0 {
		t.Fatalf("drctl verify after the takeovers: exit %d\n%s", code, out)
	}
	_, port, out, err := e.restore(t, "--to-region", "us", "--start")
	if err != nil {
		t.Fatalf("drctl restore: %v\n%s", err, out)
	}
	var got, top int64
	if err := connect(t, port).QueryRow(ctx, "SELECT count(*), coalesce(max(id), 0) FROM events").Scan(&got, &top); err != nil {
		t.Fatal(err)
	}
	if got != n || top != n {
		t.Fatalf("the restore from region us holds %d rows up to id %d, want each of the %d written once", got, top, n)
	}
}

// startEventWriter inserts ids 1, 2, ... into events every 5 ms until the
// returned stop, which returns the last id whose insert returned.
func startEventWriter(t *testing.T, dsn string) (stop func() int64) {
	t.Helper()
	var written atomic.Int64
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		ctx := context.Background()
		w, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close(ctx)
		for i := int64(1); ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			if _, err := w.Exec(ctx, "INSERT INTO events VALUES ($1)", i); err != nil {
				t.Errorf("insert %d: %v", i, err)
				return
			}
			written.Store(i)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var once sync.Once
	stop = func() int64 {
		once.Do(func() { close(quit); <-done })
		return written.Load()
	}
	t.Cleanup(func() { stop() }) // a test that fails early stops it before the server goes
	return stop
}
