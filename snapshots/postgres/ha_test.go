package postgres_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/testenv"
)

var ordersHolder = regexp.MustCompile(`(?m)^drkit_lease_holder\{cluster="orders"\} (\d)`)

// leaseHeld reads drd's drkit_lease_holder for cluster orders (-1 unreadable).
func leaseHeld(addr string) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := ordersHolder.FindSubmatch(b)
	if m == nil {
		return -1
	}
	return int(m[1][0] - '0')
}

// startNamedDrd runs drd on a free port logging into the work folder's file
// name, and returns it and its address.
func (e *env) startNamedDrd(t *testing.T, name string) (*exec.Cmd, string) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	return e.startDrdLogAt(t, addr, name), addr
}

// TestPausedHolderLosesTheSlot: two drd with drd.ha ship a PostgreSQL
// cluster under writes. The holder is SIGSTOPped: its walsender would keep
// the slot busy until wal_sender_timeout (60 s), but the other drd takes the
// lease within the TTL, ends that walsender and streams. After SIGCONT the
// paused one stands by, and a restore from region us holds every row
// written.
func TestPausedHolderLosesTheSlot(t *testing.T) {
	e := newEnv(t)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e.writeConfig(t, "drd: {ha: true, lease_ttl: 2s}\n"+string(cfg))
	ctx := context.Background()
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE events (id int PRIMARY KEY)")
	a, aAddr := e.startNamedDrd(t, "drd-a.log")
	b, bAddr := e.startNamedDrd(t, "drd-b.log")
	testenv.WaitFor(t, 30*time.Second, "one drd holds the lease", func() bool {
		x, y := leaseHeld(aAddr), leaseHeld(bAddr)
		return x >= 0 && y >= 0 && x+y == 1
	})
	holder, other, otherAddr := a, b, bAddr
	if leaseHeld(bAddr) == 1 {
		holder, other, otherAddr = b, a, aAddr
	}
	_ = other
	e.backup(t)

	var written atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		w, err := pgx.Connect(ctx, e.pg.DSN("postgres"))
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close(context.Background())
		for i := int64(1); ; i++ {
			select {
			case <-stop:
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
	time.Sleep(2 * time.Second)
	var oldPid int32
	if err := conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'drkit_orders' AND active").Scan(&oldPid); err != nil {
		t.Fatalf("the holder does not stream from the slot: %v", err)
	}
	paused := time.Now()
	if err := holder.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var slotAt time.Duration
	testenv.WaitFor(t, 30*time.Second, "the other drd takes the lease and streams from the slot", func() bool {
		if leaseHeld(otherAddr) != 1 {
			return false
		}
		var active bool
		var pid *int32
		err := conn.QueryRow(ctx, "SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = 'drkit_orders'").Scan(&active, &pid)
		if err != nil || !active || pid == nil || *pid == oldPid {
			return false // still the paused drd's walsender
		}
		slotAt = time.Since(paused)
		return true
	})
	time.Sleep(4 * time.Second) // past the paused one's TTL, as in a long GC or a partition
	if err := holder.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	n := written.Load()
	t.Logf("the other drd streamed from the slot %v after the holder was paused (lease_ttl 2s); %d rows written", slotAt.Round(time.Millisecond), n)
	if slotAt > 2*time.Second+3*time.Second {
		t.Errorf("the takeover took %v, want within the TTL (2s) and a few polls, not the walsender's 60 s timeout", slotAt)
	}
	if leaseHeld(otherAddr) != 1 {
		t.Error("after SIGCONT the paused drd took the lease back")
	}
	e.waitShipped(t, conn)
	_, port, out, err := e.restore(t, "--to-region", "us", "--start")
	if err != nil {
		t.Fatalf("drctl restore: %v\n%s", err, out)
	}
	var got, top int64
	if err := connect(t, port).QueryRow(ctx, "SELECT count(*), coalesce(max(id), 0) FROM events").Scan(&got, &top); err != nil {
		t.Fatal(err)
	}
	if got != n || top != n {
		t.Fatalf("the restore from region us holds %d rows up to id %d, want all %d written", got, top, n)
	}
}
