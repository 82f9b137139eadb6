package redis_test

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/internal/testenv"
	rdsnap "github.com/drkit/drkit/snapshots/redis"
)

// drd (the real binary) is SIGKILLed under load and stays down 5 s while a
// writer goes on with commands that are not idempotent (INCR, RPUSH of a
// sequence). Restarted, it continues the stored stream (+CONTINUE): one
// base, verify clean with every checksum, and a restore from region b
// equals the source: the counter and the list show no command lost and
// none applied twice.
func TestResumeAfterDrdKill(t *testing.T) {
	ctx := context.Background()
	src := testenv.StartRedis(t)
	dir := t.TempDir()
	cfg := drdConfig(t, dir, src.URL())
	drd := startDrd(t, cfg)
	b := region(t, filepath.Join(dir, "b"), "b")
	waitBase(t, b)

	c := src.Client(t)
	var n atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			i := n.Add(1)
			p := c.Pipeline()
			p.Incr(ctx, "counter")
			p.RPush(ctx, "seq", i)
			if _, err := p.Exec(ctx); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	drd.Kill()
	killedAt := n.Load()
	time.Sleep(5 * time.Second)
	drd = startDrd(t, cfg)
	time.Sleep(time.Second)
	close(stop)
	<-done
	want := offset(t, c)
	testenv.WaitFor(t, 30*time.Second, "region b holds the primary's offset", func() bool { return sawEnd(t, b) >= want })
	t.Logf("%d writes, %d of them while drd was down", n.Load(), n.Load()-killedAt)

	if !strings.Contains(drd.Log(), "continuing the stored stream") {
		t.Errorf("the restarted drd did not continue the stored stream (+CONTINUE)")
	}
	if bases, _, err := rdwal.ListBases(ctx, b.Pipeline, "cache"); err != nil || len(bases) != 1 {
		t.Errorf("bases after the resume: %d, %v; want the first full resync's only", len(bases), err)
	}
	rep, err := rdsnap.Verify(ctx, b.Pipeline, "cache", true, nil)
	if err != nil || !rep.OK {
		t.Fatalf("verify region b after the resume: %+v, %v", rep, err)
	}
	wantData := dataset(t, src)
	dst := testenv.StartRedis(t)
	if _, err := rdsnap.Restore(ctx, rdsnap.RestoreOptions{Cluster: "cache", Region: b, TargetDSN: dst.URL(), Log: testenv.Logger(t)}); err != nil {
		t.Fatalf("restore from region b: %v", err)
	}
	got := dst.Client(t)
	if v := got.Get(ctx, "counter").Val(); v != strconv.FormatInt(n.Load(), 10) {
		t.Errorf("counter restored as %s after %d INCRs", v, n.Load())
	}
	seq := got.LRange(ctx, "seq", 0, -1).Val()
	wantSeq := make([]string, n.Load())
	for i := range wantSeq {
		wantSeq[i] = strconv.Itoa(i + 1)
	}
	if !slices.Equal(seq, wantSeq) {
		t.Errorf("the list holds %d entries, want 1..%d once each in order", len(seq), n.Load())
	}
	if g := dataset(t, dst); !maps.Equal(g, wantData) {
		t.Errorf("restore differs from the source in %v", diff(g, wantData))
	}
}
