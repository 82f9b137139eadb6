package redis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/replication"
	rdrepl "github.com/drkit/drkit/replication/redis"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

func catalog(t *testing.T) *replication.Catalog {
	t.Helper()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &replication.Catalog{Cluster: "cache", Regions: []*storage.Region{{Name: "us", Store: st}}}
}

func fill(t *testing.T, c *goredis.Client, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := c.Set(context.Background(), fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func role(t *testing.T, c *goredis.Client) string {
	t.Helper()
	s, err := c.Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(s, "\r\n") {
		if v, ok := strings.CutPrefix(line, "role:"); ok {
			return v
		}
	}
	return ""
}

// TestReplicaCreateRefusalsAndSwitchover: bad input and undersized settings
// are refused without changing the target; the replica copies and follows
// the primary; promoting it with the primary up loses no write and turns
// the old primary into its replica.
func TestReplicaCreateRefusalsAndSwitchover(t *testing.T) {
	prim, rep, full := &testenv.Redis{Password: "pw"}, &testenv.Redis{Password: "pw"}, &testenv.Redis{Password: "pw"}
	testenv.Start(t, prim, rep, full)
	ctx := context.Background()
	pc, rc, fc := prim.Client(t), rep.Client(t), full.Client(t)
	fill(t, pc, 1, 1000)
	fill(t, fc, 1, 1)
	cat := catalog(t)
	cl := config.Cluster{Name: "cache", Engine: "redis", Region: "eu", DSN: prim.URL()}
	create := func(dsn string) (rdrepl.CreateResult, error) {
		return rdrepl.Create(ctx, rdrepl.CreateOptions{Cluster: cl, Name: "us-1", Region: "us", DSN: dsn, Catalog: cat})
	}

	if _, err := create(full.URL()); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a replica holding keys: %v", err)
	}
	if _, err := create(strings.Replace(rep.URL(), ":pw@", ":wrong@", 1)); err == nil || !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "wrong@") {
		t.Fatalf("wrong credentials must say so without the password: %v", err)
	}
	if err := pc.ConfigSet(ctx, "repl-backlog-size", "16384").Err(); err != nil {
		t.Fatal(err)
	}
	// The size asked for is a minute of the primary's recent writes, at least
	// 1 MiB; the fill above may still count in INFO's write rate.
	_, err := create(rep.URL())
	var need int
	if err != nil {
		if _, after, ok := strings.Cut(err.Error(), "CONFIG SET repl-backlog-size "); ok {
			fmt.Sscan(after, &need)
		}
	}
	if need < 1<<20 {
		t.Fatalf("a backlog too small for cross-region must be refused with the size to set (at least 1 MiB): %v", err)
	}
	if role(t, rc) != "master" || role(t, fc) != "master" || fc.DBSize(ctx).Val() != 1 {
		t.Fatal("a refused create changed a server")
	}
	if _, err := cat.Get(ctx, "us-1"); err == nil {
		t.Fatal("a refused create was registered")
	}
	if err := pc.ConfigSet(ctx, "repl-backlog-size", "64mb").Err(); err != nil {
		t.Fatal(err)
	}

	res, err := create(rep.URL())
	if err != nil || res.Existing || res.Record.Status != replication.RecordReady {
		t.Fatalf("create: %+v, %v", res, err)
	}
	if n := rc.DBSize(ctx).Val(); n != 1000 {
		t.Fatalf("the replica holds %d keys after its first sync, want 1000", n)
	}
	if again, err := create(rep.URL()); err != nil || !again.Existing {
		t.Fatalf("create again: %+v, %v", again, err)
	}
	rec, err := cat.Get(ctx, "us-1")
	if err != nil || strings.Contains(rec.DSN, ":pw@") || rec.Mode != "replicaof" {
		t.Fatalf("registered: %+v, %v", rec, err)
	}

	fill(t, pc, 1001, 1500)
	pr, err := rdrepl.Promote(ctx, rdrepl.PromoteOptions{Cluster: "cache", PrimaryDSN: prim.URL(),
		Replica: config.Replica{Name: "us-1", Region: "us", DSN: rep.URL()}})
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if !pr.Promotion.Fenced || role(t, rc) != "master" {
		t.Fatalf("promote: %+v", pr)
	}
	if n := rc.DBSize(ctx).Val(); n != 1500 {
		t.Fatalf("the new primary holds %d keys, want all 1500", n)
	}
	if err := rc.Set(ctx, "after", "promote", 0).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the old primary follows the new one", func() bool {
		return role(t, pc) == "slave" && pc.Get(ctx, "after").Val() == "promote"
	})
	if err := pc.Set(ctx, "x", "y", 0).Err(); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Fatalf("the fenced old primary took a write: %v", err)
	}
}

// TestPromoteAfterCrash: with the primary killed, the replica is promoted
// and the result says what could not be checked.
func TestPromoteAfterCrash(t *testing.T) {
	prim, rep := &testenv.Redis{}, &testenv.Redis{}
	testenv.Start(t, prim, rep)
	ctx := context.Background()
	pc, rc := prim.Client(t), rep.Client(t)
	fill(t, pc, 1, 200)
	cl := config.Cluster{Name: "cache", Engine: "redis", DSN: prim.URL()}
	if _, err := rdrepl.Create(ctx, rdrepl.CreateOptions{Cluster: cl, Name: "us-1", Region: "us", DSN: rep.URL(), Catalog: catalog(t)}); err != nil {
		t.Fatalf("create: %v", err)
	}
	testenv.WaitFor(t, 10*time.Second, "200 keys replicated", func() bool { return rc.DBSize(ctx).Val() == 200 })
	if err := prim.Kill(); err != nil {
		t.Fatal(err)
	}
	pr, err := rdrepl.Promote(ctx, rdrepl.PromoteOptions{Cluster: "cache", PrimaryDSN: prim.URL(),
		Replica: config.Replica{Name: "us-1", DSN: rep.URL()}})
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if pr.Promotion.Fenced || !strings.Contains(pr.FenceNote, "not reachable") || role(t, rc) != "master" {
		t.Fatalf("promote: %+v", pr)
	}
	if err := rc.Set(ctx, "new", "primary", 0).Err(); err != nil {
		t.Fatal(err)
	}
}
