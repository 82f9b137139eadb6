package postgres_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
)

// metric reads drd's metric name{cluster="orders"} (ok false while absent).
func metric(addr, name string) (float64, bool) {
	return testenv.Metric(addr, name+`{cluster="orders"}`)
}

// TestSyncStallIsVisible: zero-RPO mode on PostgreSQL, both regions behind a
// proxy to MinIO. While the proxy is down, a commit waits on drd, and drd's
// metrics and drctl status say so from both sides: drd's (the log has waited
// past sync.timeout) and the server's (one backend waits in SyncRep). Once
// the store is back the commit returns and the stall clears. When the
// server stops listing drd in synchronous_standby_names, the server's view
// turns to "not waiting for drd" (drkit_sync_server_synchronous 0).
func TestSyncStallIsVisible(t *testing.T) {
	testenv.UseS3Credentials()
	minio := &testenv.MinIO{}
	testenv.Start(t, minio)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(minio.Endpoint, "http://"))
	viaProxy := minio.S3
	viaProxy.Endpoint = "http://" + proxy.Addr
	// synchronous_standby_names by ALTER SYSTEM, not on the command line
	// (Settings), which a reload could not change.
	e := newEnvFull(t, t.TempDir(), &testenv.Postgres{}, "    sync: {mode: remote_durable, regions: [us], timeout: 1s}\n")
	e.useS3(t, &viaProxy, "stall")
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE t (id int)")
	testenv.PGExec(t, conn, "ALTER SYSTEM SET synchronous_standby_names = 'drkit'")
	testenv.PGExec(t, conn, "SELECT pg_reload_conf()") // commits wait for drd from here on
	_, addr := e.startNamedDrd(t, "drd.log")
	ctx := context.Background()
	testenv.WaitFor(t, 30*time.Second, "the server's view: it waits for drd, no session waiting", func() bool {
		syn, ok1 := metric(addr, "drkit_sync_server_synchronous")
		w, ok2 := metric(addr, "drkit_sync_server_waiting_sessions")
		return ok1 && ok2 && syn == 1 && w == 0
	})
	if v, ok := metric(addr, "drkit_sync_stalled"); !ok || v != 0 {
		t.Fatalf("drkit_sync_stalled = %v (present %v) with the regions up, want 0", v, ok)
	}

	writer := connect(t, e.pg.Port)
	proxy.Down()
	returned := make(chan error, 1)
	go func() {
		_, err := writer.Exec(ctx, "INSERT INTO t VALUES (1)")
		returned <- err
	}()
	testenv.WaitFor(t, 30*time.Second, "drd's view (stalled) and the server's (one session waiting)", func() bool {
		st, _ := metric(addr, "drkit_sync_stalled")
		w, _ := metric(addr, "drkit_sync_server_waiting_sessions")
		wait, _ := metric(addr, "drkit_sync_wait_seconds")
		return st == 1 && w >= 1 && wait >= 1
	})
	select {
	case err := <-returned:
		t.Fatalf("the commit returned (%v) while no region could store its WAL", err)
	default:
	}
	out, code := e.drctlRun(t, "status", "--source", "drd", "--drd", "http://"+addr)
	if code != 0 || !strings.Contains(out, "STALLED") || !regexp.MustCompile(`server: [1-9]\d* sessions waiting`).MatchString(out) {
		t.Fatalf("drctl status during the stall: exit %d, want STALLED and the server's waiting sessions\n%s", code, out)
	}

	proxy.Up(t)
	select {
	case err := <-returned:
		if err != nil {
			t.Fatalf("the commit after the store came back: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the commit did not return within 60 s of the store coming back")
	}
	testenv.WaitFor(t, 30*time.Second, "the stall clears", func() bool {
		st, ok1 := metric(addr, "drkit_sync_stalled")
		w, ok2 := metric(addr, "drkit_sync_server_waiting_sessions")
		return ok1 && ok2 && st == 0 && w == 0
	})

	testenv.PGExec(t, conn, "ALTER SYSTEM SET synchronous_standby_names = ''")
	testenv.PGExec(t, conn, "SELECT pg_reload_conf()")
	testenv.WaitFor(t, 30*time.Second, "the server's view: it no longer waits for drd", func() bool {
		syn, ok := metric(addr, "drkit_sync_server_synchronous")
		return ok && syn == 0
	})
	out, code = e.drctlRun(t, "status", "--source", "drd", "--drd", "http://"+addr)
	if code != 0 || !strings.Contains(out, "SERVER DOES NOT WAIT FOR DRD") {
		t.Fatalf("drctl status with the server not waiting for drd: exit %d\n%s", code, out)
	}
	log, _ := os.ReadFile(filepath.Join(e.work, "drd.log"))
	if c := strings.Count(string(log), "the server no longer waits for drd"); c != 1 {
		t.Errorf("drd logged that the server no longer waits for it %d times, want once", c)
	}
}
