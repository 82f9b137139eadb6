package postgres_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/testenv"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
)

// startDrd runs the real drd with the env's config until the test ends or it is
// killed.
func (e *env) startDrd(t *testing.T) *exec.Cmd {
	t.Helper()
	return e.startDrdAt(t, "127.0.0.1:"+strconv.Itoa(freePort(t)))
}

func (e *env) startDrdAt(t *testing.T, addr string) *exec.Cmd {
	t.Helper()
	return e.startDrdLogAt(t, addr, "drd.log")
}

// startDrdLogAt runs drd on addr logging into the work folder's file name;
// a paused (SIGSTOPped) drd is let go before it is killed at the end.
func (e *env) startDrdLogAt(t *testing.T, addr, name string) *exec.Cmd {
	t.Helper()
	drd := testenv.Binary(t, "drd")
	logf, err := os.Create(filepath.Join(e.work, name))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(drd, "--config", e.cfgPath, "--listen", addr, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	return cmd
}

func (e *env) drdLog() string {
	b, _ := os.ReadFile(filepath.Join(e.work, "drd.log"))
	return string(b)
}

// TestDisaster: under pgbench load, SIGKILL the primary and drd, lose region
// eu's store entirely, restore the latest state from region us alone: every
// commit acknowledged more than 2 x flush_interval before the kill is there.
func TestDisaster(t *testing.T) {
	// 500 ms rather than the other tests' 200 ms: the bound is flush_interval
	// plus the upload, and under -race with pgbench on 2 cores an upload with
	// its fsyncs can take 200 ms.
	e := newEnvWith(t, "    flush_interval: 500ms\n")
	flush := time.Duration(e.cfg.Clusters[0].FlushInterval)
	ctx := context.Background()
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE acked (id int PRIMARY KEY, payload text)")
	bin, err := pgsnap.BinDir("15")
	if err != nil {
		t.Fatal(err)
	}
	pgbench := filepath.Join(bin, "pgbench")
	if out, err := exec.Command(pgbench, "-i", "-s", "5", "-q", e.pg.DSN("postgres")).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	drd := e.startDrd(t)
	e.backup(t)

	load := exec.Command(pgbench, "-c", "2", "-T", "60", "-n", e.pg.DSN("postgres"))
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = load.Process.Kill(); _ = load.Wait() }()

	// One writer records when each of its commits was acknowledged.
	var mu sync.Mutex
	acked := map[int]time.Time{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		w, err := pgx.Connect(ctx, e.pg.DSN("postgres"))
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close(context.Background())
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Exec(ctx, "INSERT INTO acked VALUES ($1, repeat('x', 200))", i); err != nil {
				return // the primary was killed
			}
			mu.Lock()
			acked[i] = time.Now()
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(4 * time.Second)
	killedAt := time.Now()
	if err := e.pg.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := drd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()

	// Region eu is lost.
	if err := os.RemoveAll(filepath.Join(e.work, "eu")); err != nil {
		t.Fatal(err)
	}
	_, port, out, err := e.restore(t, "--to-region", "us", "--start")
	if err != nil {
		t.Fatalf("drctl restore: %v\n%s\ndrd log:\n%s", err, out, tailString(e.drdLog(), 30))
	}
	present := restoredIDs(t, port)
	cutoff := killedAt.Add(-2 * flush)
	var must, lost int
	var newestLostAge time.Duration
	for id, at := range acked {
		if at.Before(cutoff) {
			must++
			if !present[id] {
				lost++
				newestLostAge = max(newestLostAge, killedAt.Sub(at))
			}
		}
	}
	t.Logf("%d commits acknowledged, %d before the cutoff, %d restored in all", len(acked), must, len(present))
	if must < 100 {
		t.Fatalf("only %d commits before the cutoff: the load did not run", must)
	}
	if lost > 0 {
		t.Fatalf("%d commits acknowledged more than 2 x %s before the kill are missing (the oldest %s before it)\ndrd log:\n%s", lost, flush, newestLostAge, tailString(e.drdLog(), 40))
	}
}

func tailString(s string, n int) string {
	lines := splitLines(s)
	return joinLines(lines[max(0, len(lines)-n):])
}
