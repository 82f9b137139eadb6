package mysql_test

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
)

// holds reads drd's drkit_lease_holder for cluster shop (-1 unreadable).
func holds(addr string) int {
	v, ok := testenv.Metric(addr, `drkit_lease_holder{cluster="shop"}`)
	if !ok {
		return -1
	}
	return int(v)
}

// TestTwoDrdOneShips: two drd with drd.ha on one MariaDB cluster (which has
// no replication slot to stop a second shipper): one holds the cluster's
// lease and ships, the other stands by; the holder is SIGKILLed under
// writes, the other takes over within the lease TTL and a flush, and a
// restore from region us holds every row written.
func TestTwoDrdOneShips(t *testing.T) {
	src, target := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, target)
	e, db := haEnv(t, src, "drd: {ha: true, lease_ttl: 2s}")
	a, aAddr := e.startDrdLog(t, "drd-a.log")
	b, bAddr := e.startDrdLog(t, "drd-b.log")
	testenv.WaitFor(t, 20*time.Second, "one drd holds the lease, the other stands by", func() bool {
		return holds(aAddr)+holds(bAddr) == 1 && holds(aAddr) >= 0 && holds(bAddr) >= 0
	})
	holder, standbyAddr := a, bAddr
	if holds(bAddr) == 1 {
		holder, standbyAddr = b, aAddr
	}
	if out, err := e.run("backup", "--cluster", "shop"); err != nil {
		t.Fatalf("drctl backup: %v\n%s", err, out)
	}
	written, stopWriter := startWriter(t, db, 10*time.Millisecond)
	time.Sleep(2 * time.Second)
	killed := time.Now()
	_ = holder.Process.Kill()
	testenv.WaitFor(t, 20*time.Second, "the standby takes the lease", func() bool { return holds(standbyAddr) == 1 })
	took := time.Since(killed)
	time.Sleep(2 * time.Second)
	stopWriter()
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

// TestThreeDrdHoldTheLease: three drd with drd.ha on one MariaDB cluster
// under writes. The holder is SIGKILLed, then the next holder is SIGSTOPped
// for three TTLs and SIGCONTed: each time exactly one other drd takes over
// within the TTL and a flush (the new holder replaces the paused one's dump;
// the paused one stops working when its hold ends, and what it uploads late
// loses to the new holder's chunks). Afterwards one drd holds the lease,
// drctl verify passes, and a restore from region us holds every row written,
// each once.
func TestThreeDrdHoldTheLease(t *testing.T) {
	src, target := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, target)
	const ttl = 2 * time.Second
	e, db := haEnv(t, src, "drd: {ha: true, lease_ttl: 2s}")
	type drd struct {
		cmd  *exec.Cmd
		addr string
	}
	ds := make([]drd, 3)
	for i := range ds {
		ds[i].cmd, ds[i].addr = e.startDrdLog(t, fmt.Sprintf("drd-%d.log", i))
	}
	holder := func(skip ...int) int { // the one holding, -1 while not exactly one does
		h, n := -1, 0
		for i, d := range ds {
			if slices.Contains(skip, i) {
				continue
			}
			if holds(d.addr) == 1 {
				h, n = i, n+1
			}
		}
		if n != 1 {
			return -1
		}
		return h
	}
	var h int
	testenv.WaitFor(t, 20*time.Second, "one of three drd holds the lease", func() bool { h = holder(); return h >= 0 })
	if out, err := e.run("backup", "--cluster", "shop"); err != nil {
		t.Fatalf("drctl backup: %v\n%s", err, out)
	}
	written, stopWriter := startWriter(t, db, 5*time.Millisecond)
	time.Sleep(2 * time.Second)

	// SIGKILL: one of the other two takes over.
	killed := time.Now()
	_ = ds[h].cmd.Process.Kill()
	dead := h
	testenv.WaitFor(t, 20*time.Second, "another drd takes the lease after the SIGKILL", func() bool { h = holder(dead); return h >= 0 })
	tookKill := time.Since(killed)

	// SIGSTOP longer than the TTL: the last one takes over; SIGCONT: the
	// paused one finds its hold gone and stands by.
	time.Sleep(2 * time.Second)
	paused := h
	stopped := time.Now()
	if err := ds[paused].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the third drd takes the lease from the paused one", func() bool { h = holder(dead, paused); return h >= 0 })
	tookStop := time.Since(stopped)
	time.Sleep(3*ttl - time.Since(stopped))
	if err := ds[paused].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "after SIGCONT the paused drd stands by and exactly one holds", func() bool {
		return holds(ds[paused].addr) == 0 && holder(dead) == h
	})
	time.Sleep(2 * time.Second)
	stopWriter()
	n := written.Load()
	t.Logf("takeover after SIGKILL %v, after SIGSTOP %v (lease_ttl %v); %d rows written", tookKill.Round(time.Millisecond), tookStop.Round(time.Millisecond), ttl, n)
	for what, took := range map[string]time.Duration{"SIGKILL": tookKill, "SIGSTOP": tookStop} {
		if took > ttl+2*time.Second {
			t.Errorf("takeover after %s took %v, want within the TTL (%v) and a flush and a poll", what, took, ttl)
		}
	}
	time.Sleep(time.Second) // the last flush
	// The fencing token: every holder's chunks carry its lease generation,
	// the third holder's the highest; its scheduled backups too.
	chunks, _ := filepath.Glob(filepath.Join(e.work, "us", "shop", "binlog", "*-f*"))
	newest := 0
	for _, c := range chunks {
		if m := regexp.MustCompile(`-f(\d+)\.`).FindStringSubmatch(filepath.Base(c)); m != nil {
			g, _ := strconv.Atoi(m[1])
			newest = max(newest, g)
		}
	}
	if newest < 3 {
		t.Errorf("the newest binlog chunk fence is %d (of %d fenced chunks), want the third holder's generation, 3 or more", newest, len(chunks))
	}
	manifests, _ := filepath.Glob(filepath.Join(e.work, "us", "shop", "*", "*", "manifest.json"))
	fenced := 0
	for _, m := range manifests {
		if b, err := os.ReadFile(m); err == nil && strings.Contains(string(b), `"fence":`) {
			fenced++
		}
	}
	if fenced == 0 {
		t.Errorf("none of the %d backup manifests in us carries a fence", len(manifests))
	}
	// Scheduled jobs run on the cluster's lease: a drd standing by (each
	// did, for seconds of the 4 s backup schedule, before it took the
	// lease) runs, or even tries, none.
	ran := 0
	for i := range ds {
		log, _ := os.ReadFile(filepath.Join(e.work, fmt.Sprintf("drd-%d.log", i)))
		before, n := jobsBeforeLease(string(log), "shop", "backup-shop")
		if len(before) > 0 {
			t.Errorf("drd %d ran or tried job backup-shop before it held the cluster's lease:\n%s", i, strings.Join(before, "\n"))
		}
		ran += n
	}
	if ran == 0 {
		t.Error("no drd logged a run of the scheduled job backup-shop: the check above saw nothing")
	}
	if out, err := e.run("verify", "--cluster", "shop", "--region", "us"); err != nil {
		t.Fatalf("drctl verify: %v\n%s", err, out)
	}
	if out, err := e.run("restore", "--cluster", "shop", "--to-region", "us", "--target-dsn", target.DSN("")); err != nil {
		t.Fatalf("drctl restore: %v\n%s", err, out)
	}
	var got, distinct, top int64
	if err := target.Open(t, "").QueryRow("SELECT count(*), count(DISTINCT id), coalesce(max(id), 0) FROM shop.events").Scan(&got, &distinct, &top); err != nil {
		t.Fatal(err)
	}
	if got != n || distinct != n || top != n {
		t.Fatalf("the restore from region us holds %d rows (%d distinct, up to id %d), want each of the %d written once", got, distinct, top, n)
	}
}

// TestLeaseFailoverTime is the failover benchmark of issue #26 (make
// bench-ha), not part of make test: it needs minutes. Two drd with the
// default lease_ttl (10s) ship a MariaDB cluster under writes; ten times the
// holder is SIGKILLed (then started again), and the time from the kill to
// the first binlog chunk the new holder writes into region us is measured.
// It prints p50, p99 and max.
func TestLeaseFailoverTime(t *testing.T) {
	if os.Getenv("DRKIT_BENCH_HA") == "" {
		t.Skip("a benchmark (minutes of SIGKILLs): run it with make bench-ha, which sets DRKIT_BENCH_HA=1")
	}
	src := &testenv.MariaDB{}
	testenv.Start(t, src)
	e, db := haEnv(t, src, "drd: {ha: true}")
	_, stopWriter := startWriter(t, db, 20*time.Millisecond)
	defer stopWriter()
	type drd struct {
		cmd  *exec.Cmd
		addr string
	}
	names := []string{"drd-a.log", "drd-b.log"}
	ds := make([]drd, 2)
	for i := range ds {
		ds[i].cmd, ds[i].addr = e.startDrdLog(t, names[i])
	}
	newestChunk := func() time.Time {
		var at time.Time
		chunks, _ := filepath.Glob(filepath.Join(e.work, "us", "shop", "binlog", "*"))
		for _, c := range chunks {
			if fi, err := os.Stat(c); err == nil && fi.ModTime().After(at) {
				at = fi.ModTime()
			}
		}
		return at
	}
	var took []time.Duration
	for round := range 10 {
		var h int
		testenv.WaitFor(t, 60*time.Second, "one drd holds the lease", func() bool {
			a, b := holds(ds[0].addr), holds(ds[1].addr)
			h = map[bool]int{true: 0, false: 1}[a == 1]
			return a+b == 1 && a >= 0 && b >= 0
		})
		time.Sleep(3 * time.Second) // the standby has seen the lease renewed
		killed := time.Now()
		_ = ds[h].cmd.Process.Kill()
		_ = ds[h].cmd.Wait()
		testenv.WaitFor(t, 60*time.Second, "a chunk from the new holder", func() bool {
			return holds(ds[1-h].addr) == 1 && newestChunk().After(killed)
		})
		d := newestChunk().Sub(killed)
		took = append(took, d)
		t.Logf("round %d: the first chunk from the new holder %v after the kill", round+1, d.Round(time.Millisecond))
		ds[h].cmd, ds[h].addr = e.startDrdLog(t, fmt.Sprintf("drd-%d.log", round))
	}
	slices.Sort(took)
	p := func(q float64) time.Duration { return took[min(len(took)-1, int(q*float64(len(took))))] }
	t.Logf("lease failover (lease_ttl 10s), SIGKILL to the first chunk from the new holder over %d kills: p50 %v, p99 %v, max %v",
		len(took), p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}

// jobsBeforeLease returns the lines of drd's JSON log about job runs
// (complete, failed, skipped) that come before the drd first took
// cluster's lease, and how many lines in all name a run of job.
func jobsBeforeLease(log, cluster, job string) (before []string, runs int) {
	held := false
	for line := range strings.Lines(log) {
		if strings.Contains(line, `"msg":"took the lease"`) && strings.Contains(line, `"lease":"_drkit/leases/`+cluster+`.json"`) {
			held = true
		}
		if !strings.Contains(line, `"msg":"job run`) || !strings.Contains(line, `"job":"`+job+`"`) {
			continue
		}
		runs++
		if !held {
			before = append(before, strings.TrimSpace(line))
		}
	}
	return before, runs
}

// haEnv is a drkit env for src whose config starts with drdLine (drd.ha),
// with the table shop.events the writers fill.
func haEnv(t *testing.T, src *testenv.MariaDB, drdLine string) (*drkitEnv, *sql.DB) {
	t.Helper()
	e := newDrkitEnv(t, src, 200*time.Millisecond)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfgPath, append([]byte(drdLine+"\n"), cfg...), 0o600); err != nil {
		t.Fatal(err)
	}
	db := src.Open(t, "")
	testenv.Exec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.events (id INT PRIMARY KEY)")
	return e, db
}

// startWriter inserts ids 1, 2, ... into shop.events every pause; written
// is the last id committed, and stop ends the writer and waits for it.
func startWriter(t *testing.T, db *sql.DB, pause time.Duration) (written *atomic.Int64, stop func()) {
	written = &atomic.Int64{}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			if _, err := db.Exec("INSERT INTO shop.events VALUES (?)", i); err != nil {
				t.Errorf("insert %d: %v", i, err)
				return
			}
			written.Store(int64(i))
			time.Sleep(pause)
		}
	}()
	return written, func() { close(quit); <-done }
}
