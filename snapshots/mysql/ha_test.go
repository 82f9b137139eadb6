package mysql_test

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
)

var holderMetric = regexp.MustCompile(`(?m)^drkit_lease_holder\{cluster="shop"\} (\d)`)

// holds reads drd's drkit_lease_holder for cluster shop (-1 unreadable).
func holds(addr string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := holderMetric.FindSubmatch(b)
	if m == nil {
		return -1
	}
	return int(m[1][0] - '0')
}

// TestTwoDrdOneShips: two drd with drd.ha on one MariaDB cluster (which has
// no replication slot to stop a second shipper): one holds the cluster's
// lease and ships, the other stands by; the holder is SIGKILLed under
// writes, the other takes over within the lease TTL and a flush, and a
// restore from region us holds every row written.
func TestTwoDrdOneShips(t *testing.T) {
	src, target := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, target)
	e := newDrkitEnv(t, src, 200*time.Millisecond)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfgPath, append([]byte("drd: {ha: true, lease_ttl: 2s}\n"), cfg...), 0o600); err != nil {
		t.Fatal(err)
	}
	db := src.Open(t, "")
	testenv.Exec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.events (id INT PRIMARY KEY)")
	a, aAddr := e.startDrdLog(t, "drd-a.log")
	b, bAddr := e.startDrdLog(t, "drd-b.log")
	testenv.WaitFor(t, 20*time.Second, "one drd holds the lease, the other stands by", func() bool {
		return holds(aAddr)+holds(bAddr) == 1 && holds(aAddr) >= 0 && holds(bAddr) >= 0
	})
	holder, standby, standbyAddr := a, b, bAddr
	if holds(bAddr) == 1 {
		holder, standby, standbyAddr = b, a, aAddr
	}
	_ = standby
	if out, err := e.run("backup", "--cluster", "shop"); err != nil {
		t.Fatalf("drctl backup: %v\n%s", err, out)
	}
	var written atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.Exec("INSERT INTO shop.events VALUES (?)", i); err != nil {
				t.Errorf("insert %d: %v", i, err)
				return
			}
			written.Store(int64(i))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(2 * time.Second)
	killed := time.Now()
	_ = holder.Process.Kill()
	testenv.WaitFor(t, 20*time.Second, "the standby takes the lease", func() bool { return holds(standbyAddr) == 1 })
	took := time.Since(killed)
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	n := written.Load()
	t.Logf("the standby took over %v after the holder was killed (lease_ttl 2s); %d rows written", took, n)
	if took > 2*time.Second+2*time.Second {
		t.Errorf("takeover took %v, want within the lease TTL (2s) and a couple of polls", took)
	}
	time.Sleep(time.Second) // the last flush
	if out, err := e.run("restore", "--cluster", "shop", "--to-region", "us", "--target-dsn", target.DSN("")); err != nil {
		t.Fatalf("drctl restore: %v\n%s", err, out)
	}
	var got int64
	if err := target.Open(t, "").QueryRow("SELECT count(*) FROM shop.events").Scan(&got); err != nil || got != n {
		t.Fatalf("the restore from region us holds %d rows (%v), want all %d written", got, err, n)
	}
	log, _ := os.ReadFile(e.work + "/" + map[bool]string{true: "drd-a.log", false: "drd-b.log"}[standbyAddr == aAddr])
	if c := strings.Count(string(log), "took the lease"); c != 1 {
		t.Errorf("the standby said it took the lease %d times, want once", c)
	}
}
