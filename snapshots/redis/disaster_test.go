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

// Disaster: redis-server and drd (the real binary) are SIGKILLed together
// under redis-benchmark load and a stamped writer. A restore of the newest
// from region b alone holds every stamp acknowledged more than two flush
// intervals before the kill.
func TestDisasterKillsRedisAndDrd(t *testing.T) {
	ctx := context.Background()
	src := testenv.StartRedis(t)
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
	drd.Kill()
	close(stop)
	<-done

	dst := testenv.StartRedis(t)
	res, err := rdsnap.Restore(ctx, rdsnap.RestoreOptions{Cluster: "cache", Region: b, TargetDSN: dst.URL(), Log: testenv.Logger(t)})
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
}

// Under redis-benchmark load (SET, INCR, LPUSH, with expiries), the primary
// stops taking writes (CLIENT PAUSE WRITE: a kill under load leaves a
// replica and drd at offsets that differ by what the primary had not yet
// flushed to one of them); once region b and a redis-server replica hold
// the same offset, the primary and drd are SIGKILLed. A restore from region
// b alone equals the replica: DBSIZE, every key's value and absolute expiry.
func TestRestoreEqualsAReplicaAtTheSameOffset(t *testing.T) {
	ctx := context.Background()
	src := testenv.StartRedis(t)
	rep := src.StartReplica(t)
	dir := t.TempDir()
	drd := startDrd(t, drdConfig(t, dir, src.URL()))
	b := region(t, filepath.Join(dir, "b"), "b")
	waitBase(t, b)
	bench := exec.Command("redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(src.Port), "-c", "20", "-n", "10000000", "-r", "5000", "-t", "set,incr,lpush", "-q")
	if err := bench.Start(); err != nil {
		t.Fatalf("redis-benchmark (Debian's redis-tools): %v", err)
	}
	t.Cleanup(func() { _ = bench.Process.Kill(); _ = bench.Wait() })
	c := src.Client(t)
	for i := range 200 {
		c.Set(ctx, "ttl:"+strconv.Itoa(i), i, time.Duration(i+1)*time.Minute)
	}
	time.Sleep(2 * time.Second)
	if err := c.Do(ctx, "CLIENT", "PAUSE", "60000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	at := offset(t, c)
	testenv.WaitFor(t, 10*time.Second, "the replica and region b hold the primary's offset", func() bool {
		return offset(t, rep.Client(t)) == at && sawEnd(t, b) == at
	})
	_ = src.Kill()
	drd.Kill()

	dst := testenv.StartRedis(t)
	res, err := rdsnap.Restore(ctx, rdsnap.RestoreOptions{Cluster: "cache", Region: b, TargetDSN: dst.URL(), Log: testenv.Logger(t)})
	if err != nil {
		t.Fatalf("restore from region b: %v", err)
	}
	got, want := dst.Client(t).DBSize(ctx).Val(), rep.Client(t).DBSize(ctx).Val()
	t.Logf("offset %d: %d keys restored, %d commands replayed; the replica holds %d keys", at, got, res.Commands, want)
	if got != want {
		t.Errorf("DBSIZE: restored %d, the replica at the same offset %d", got, want)
	}
	if g, w := dataset(t, dst), dataset(t, rep); !maps.Equal(g, w) {
		t.Errorf("the restore differs from the replica at offset %d in %d keys: %v", at, len(diff(g, w)), first(diff(g, w), 5))
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
