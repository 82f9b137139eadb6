package redis_test

import (
	"context"
	"maps"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	rdsnap "github.com/drkit/drkit/snapshots/redis"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// Disaster: redis-server and drd (the real binary) are SIGKILLed under
// redis-benchmark load and a stamped writer. A restore of the newest from
// region b alone holds every stamp acknowledged more than two flush
// intervals before the kill, and equals (DBSIZE, every key's value and
// expiry) a redis-server replica that stopped at the same offset: drd is
// killed once region b holds what the replica received (the primary wrote
// the same stream to both before it died).
func TestDisasterKillsRedisAndDrd(t *testing.T) {
	ctx := context.Background()
	src := testenv.StartRedis(t)
	rep := src.StartReplica(t)
	dir := t.TempDir()
	drd := startDrd(t, drdConfig(t, dir, src.URL()))
	b := region(t, filepath.Join(dir, "b"), "b")
	waitBase(t, b)

	bench := exec.Command("redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(src.Port), "-c", "20", "-n", "10000000", "-t", "set,incr,lpush", "-q")
	if err := bench.Start(); err != nil {
		t.Fatalf("redis-benchmark (Debian's redis-tools): %v", err)
	}
	t.Cleanup(func() { _ = bench.Process.Kill(); _ = bench.Wait() })

	c := src.Client(t)
	var mu sync.Mutex
	acked := map[int]time.Time{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := c.Set(ctx, "stamp:"+strconv.Itoa(i), i, 0).Err(); err != nil {
				return // the server is gone
			}
			mu.Lock()
			acked[i] = time.Now()
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(3 * time.Second)
	killedAt := time.Now()
	_ = src.Kill()
	close(stop)
	<-done
	replicaAt := offset(t, rep.Client(t))
	sameOffset := waitUntil(5*time.Second, func() bool { return sawEnd(t, b) == replicaAt })
	drd.Kill()
	if !sameOffset {
		// The primary died between its writes to the two: the stamps are
		// still checked, the comparison needs the same offset.
		t.Logf("region b ends at offset %d, the replica at %d: no full comparison this run", sawEnd(t, b), replicaAt)
	}

	dst := testenv.StartRedis(t)
	res, err := rdsnap.Restore(ctx, rdsnap.RestoreOptions{Cluster: "cache", Region: b, TargetDSN: dst.URL(), Log: testenv.Logger()})
	if err != nil {
		t.Fatalf("restore from region b after the kill: %v", err)
	}
	got := dst.Client(t)
	mu.Lock()
	defer mu.Unlock()
	must, have := 0, 0
	for i, at := range acked {
		ok := got.Exists(ctx, "stamp:"+strconv.Itoa(i)).Val() == 1
		if ok {
			have++
		}
		if at.Before(killedAt.Add(-2 * 200 * time.Millisecond)) {
			must++
			if !ok {
				t.Errorf("stamp %d acknowledged %s before the kill is missing", i, killedAt.Sub(at))
			}
		}
	}
	t.Logf("%d stamps acknowledged, %d of them more than 400 ms before the kill; %d restored; %d keys, %d commands replayed", len(acked), must, have, res.Keys, res.Commands)
	if must < 100 {
		t.Fatalf("only %d stamps were acknowledged early enough to check", must)
	}
	if sameOffset {
		if g, w := got.DBSize(ctx).Val(), rep.Client(t).DBSize(ctx).Val(); g != w {
			t.Errorf("DBSIZE: restored %d, the replica at the same offset %d", g, w)
		}
		if g, w := dataset(t, dst), dataset(t, rep); !maps.Equal(g, w) {
			t.Errorf("the restore differs from the replica at offset %d in %d keys: %v", replicaAt, len(diff(g, w)), first(diff(g, w), 5))
		}
	}
}

// waitUntil polls cond every 50 ms for up to d and reports whether it held.
func waitUntil(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// region opens a file:// region folder as drd wrote it.
func region(t *testing.T, dir, name string) *storage.Region {
	t.Helper()
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &storage.Region{Name: name, Store: st, Pipeline: &storage.Pipeline{Store: st, Region: name}}
}
