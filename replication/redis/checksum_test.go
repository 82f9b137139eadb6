package redis_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/replication"
	rdrepl "github.com/drkit/drkit/replication/redis"
)

func check(t *testing.T, prim, rep *testenv.Redis) replication.Report {
	t.Helper()
	ctx := context.Background()
	p, r, err := rdrepl.OpenSides(ctx, prim.URL(), rep.URL(), []string{"drkit_heartbeat:cache"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer r.Close()
	res, err := (&replication.Checker{Primary: p, Replica: r, ChunkRows: 100, Wait: 10 * time.Second}).Run(ctx)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return res
}

// seed writes every value type, with and without expiry, into db0 and db3.
func seed(t *testing.T, c *goredis.Client, db3 *goredis.Client) {
	t.Helper()
	ctx := context.Background()
	p := c.Pipeline()
	for i := range 1000 {
		p.Set(ctx, fmt.Sprintf("s:%04d", i), i, 0)
	}
	for i := range 50 {
		p.HSet(ctx, fmt.Sprintf("h:%02d", i), "a", i, "b", "x", "c", i*2)
		p.RPush(ctx, fmt.Sprintf("l:%02d", i), 3, 1, 2, i)
		p.SAdd(ctx, fmt.Sprintf("set:%02d", i), "z", "a", "m", i)
		p.ZAdd(ctx, fmt.Sprintf("z:%02d", i), goredis.Z{Score: 1.5, Member: "a"}, goredis.Z{Score: float64(i), Member: "b"})
		p.XAdd(ctx, &goredis.XAddArgs{Stream: fmt.Sprintf("x:%02d", i), ID: fmt.Sprintf("%d-1", i+1), Values: []any{"f", i, "g", "v"}})
		p.Set(ctx, fmt.Sprintf("ttl:%02d", i), i, time.Hour)
	}
	p.Set(ctx, "drkit_heartbeat:cache", time.Now().UnixMicro(), 0)
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := db3.Set(ctx, fmt.Sprintf("other:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckFindsDrift: a replica fed by Redis replication is in sync across
// every value type and database, also while the primary is written to; a
// value changed, a key deleted, a key added and an expiry set on the replica
// alone are each found with the key range that holds them.
func TestCheckFindsDrift(t *testing.T) {
	prim := testenv.StartRedis(t)
	rep := prim.StartReplica(t)
	ctx := context.Background()
	pc, rc := prim.Client(t), rep.Client(t)
	p3 := goredis.NewClient(&goredis.Options{Addr: prim.Addr(), DB: 3})
	t.Cleanup(func() { p3.Close() })
	seed(t, pc, p3)

	// Writes during the check: changed chunks are compared again, never drift.
	stop, wg := make(chan struct{}), sync.WaitGroup{}
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			pc.Set(ctx, fmt.Sprintf("s:%04d", i%1000), i, 0)
			pc.Set(ctx, "drkit_heartbeat:cache", time.Now().UnixMicro(), 0)
			time.Sleep(time.Millisecond)
		}
	})
	res := check(t, prim, rep)
	close(stop)
	wg.Wait()
	if !res.InSync() || res.Tables != 2 || res.Rows != 1000+6*50+20 {
		t.Fatalf("a replica fed only by replication must be in sync: %+v", res)
	}
	if res.Chunks < 13 {
		t.Errorf("1320 keys in chunks of 100 compared in %d chunks", res.Chunks)
	}

	// Drift on the replica alone.
	if err := rc.ConfigSet(ctx, "replica-read-only", "no").Err(); err != nil {
		t.Fatal(err)
	}
	r3 := goredis.NewClient(&goredis.Options{Addr: rep.Addr(), DB: 3})
	t.Cleanup(func() { r3.Close() })
	for _, err := range []error{
		rc.HSet(ctx, "h:07", "b", "changed").Err(),
		rc.Del(ctx, "s:0500").Err(),
		rc.Expire(ctx, "z:30", time.Hour).Err(),
		r3.Set(ctx, "other:extra", 1, 0).Err(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	res = check(t, prim, rep)
	want := []struct {
		table string
		keys  []string
		rows  int64 // replica rows minus primary rows
	}{{"db0.keys", []string{"h:07"}, 0}, {"db0.keys", []string{"s:0500"}, -1}, {"db0.keys", []string{"z:30"}, 0}, {"db3.keys", []string{"other:extra"}, 1}}
	if len(res.Diffs) != len(want) {
		t.Fatalf("want %d differing ranges, got %+v", len(want), res.Diffs)
	}
	for i, w := range want {
		d := res.Diffs[i]
		for _, k := range w.keys {
			if d.Table != w.table || (d.From != "" && k < d.From) || (d.To != "" && k >= d.To) || d.ReplicaRows-d.PrimaryRows != w.rows {
				t.Errorf("diff %d: %s %s (%d vs %d rows) does not show %s", i, d.Table, d.Range(), d.PrimaryRows, d.ReplicaRows, k)
			}
		}
	}
	if res.Diffs[0].To != "s:0000" || res.Diffs[2].From != "x:00" {
		t.Errorf("chunks of 100 sorted keys: got %s and %s, want [-inf, s:0000) and [x:00, +inf)", res.Diffs[0].Range(), res.Diffs[2].Range())
	}
}
