package mysql_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
)

// shopMetric reads drd's metric name{cluster="shop"} (ok false while absent).
func shopMetric(addr, name string) (float64, bool) {
	return testenv.Metric(addr, name+`{cluster="shop"}`)
}

// TestSemiSyncFallbackIsVisible: zero-RPO mode on MariaDB, both regions
// behind a proxy to MinIO. While the proxy is down the server waits
// rpl_semi_sync_master_timeout (1 s) for drd's acknowledgement and falls
// back to asynchronous replication, which drd must make visible: the
// server's own view turns to "not waiting for drd"
// (drkit_sync_server_synchronous 0, drctl status, an ERROR in drd's log)
// beside drd's own (drkit_sync_stalled 1). Once the store is back and drd
// has caught up, the server waits for drd again and drd says so.
func TestSemiSyncFallbackIsVisible(t *testing.T) {
	src := &testenv.MariaDB{Args: []string{"--rpl-semi-sync-master-enabled=ON",
		"--rpl-semi-sync-master-timeout=1000", "--rpl-semi-sync-master-wait-point=AFTER_SYNC"}}
	testenv.Start(t, src)
	testenv.UseS3Credentials()
	minio := &testenv.MinIO{}
	testenv.Start(t, minio)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(minio.Endpoint, "http://"))
	viaProxy := minio.S3
	viaProxy.Endpoint = "http://" + proxy.Addr
	e, db := haEnv(t, src, "")
	addSyncToCluster(t, e, "    sync: {mode: remote_durable, regions: [us], timeout: 1s}\n")
	e.useS3(t, &viaProxy, "fallback")
	_, addr := e.startDrd(t)
	id := 0
	insert := func() {
		id++
		testenv.Exec(t, db, "INSERT INTO shop.events VALUES ("+strconv.Itoa(id)+")")
	}
	testenv.WaitFor(t, 30*time.Second, "the server waits for drd (its own view)", func() bool {
		insert() // a commit drd acknowledges turns semi-sync back on
		syn, ok := shopMetric(addr, "drkit_sync_server_synchronous")
		return ok && syn == 1
	})

	proxy.Down()
	insert() // waits the 1 s timeout, then the server falls back
	testenv.WaitFor(t, 30*time.Second, "the server's view: it no longer waits for drd; drd's: stalled", func() bool {
		syn, ok := shopMetric(addr, "drkit_sync_server_synchronous")
		st, _ := shopMetric(addr, "drkit_sync_stalled")
		return ok && syn == 0 && st == 1
	})
	out, err := e.run("status", "--cluster", "shop", "--source", "drd", "--drd", "http://"+addr)
	if err != nil || !strings.Contains(out, "SERVER DOES NOT WAIT FOR DRD") {
		t.Fatalf("drctl status after the fallback: %v, want SERVER DOES NOT WAIT FOR DRD\n%s", err, out)
	}

	proxy.Up(t)
	testenv.WaitFor(t, 60*time.Second, "the server waits for drd again", func() bool {
		insert()
		syn, ok := shopMetric(addr, "drkit_sync_server_synchronous")
		st, _ := shopMetric(addr, "drkit_sync_stalled")
		return ok && syn == 1 && st == 0
	})
	log, _ := os.ReadFile(filepath.Join(e.work, "drd.log"))
	for _, want := range []string{"the server fell back to asynchronous replication", "the server waits for drd's acknowledgement again"} {
		if c := strings.Count(string(log), want); c != 1 {
			t.Errorf("drd logged %q %d times, want once", want, c)
		}
	}
}
