package redis_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/internal/testenv"
	rdsnap "github.com/drkit/drkit/snapshots/redis"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// Disaster: redis-server and drd (the real binary) are SIGKILLed together
// under redis-benchmark load and a stamped writer. A restore of the newest
// from region b alone holds every stamp acknowledged more than two flush
// intervals before the kill, and no stamp that was never written.
func TestDisasterKillsRedisAndDrd(t *testing.T) {
	ctx := context.Background()
	src := testenv.StartRedis(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "drkit.yaml")
	yaml := fmt.Sprintf("drd:\n  listen: 127.0.0.1:0\nregions:\n  - {name: a, store: 'file://%[1]s/a'}\n  - {name: b, store: 'file://%[1]s/b'}\n"+
		"clusters:\n  - {name: cache, engine: redis, region: a, dsn: '%[2]s', flush_interval: 200ms}\n", dir, src.URL())
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	drd := exec.Command(testenv.Binary(t, "drd"), "--config", cfg)
	var logs bytes.Buffer
	drd.Stderr = &logs
	if err := drd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = drd.Process.Kill()
		_ = drd.Wait()
		if t.Failed() {
			t.Logf("drd's log:\n%s", logs.String())
		}
	})
	b := region(t, filepath.Join(dir, "b"), "b")
	testenv.WaitFor(t, 30*time.Second, "drd stored a base in region b", func() bool {
		bases, _, _ := rdwal.ListBases(ctx, b.Pipeline, "cache")
		return len(bases) > 0
	})

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
	_ = drd.Process.Signal(syscall.SIGKILL)
	close(stop)
	<-done
	dst := testenv.StartRedis(t)
	res, err := rdsnap.Restore(ctx, rdsnap.RestoreOptions{Cluster: "cache", Region: b, TargetDSN: dst.URL(), AcceptGap: false, Log: testenv.Logger()})
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
	if n := got.Exists(ctx, "stamp:"+strconv.Itoa(len(acked)+1)).Val(); n != 0 {
		t.Error("a stamp that was never written was restored")
	}
	t.Logf("%d stamps acknowledged, %d of them more than 400 ms before the kill; %d restored; %d keys, %d commands replayed", len(acked), must, have, res.Keys, res.Commands)
	if must < 100 {
		t.Fatalf("only %d stamps were acknowledged early enough to check", must)
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
