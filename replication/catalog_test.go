package replication_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/config"
	_ "github.com/drkit/drkit/internal/engine/mysql" // the MySQL DSN form trusted hosts are read from
	"github.com/drkit/drkit/monitor"
	"github.com/drkit/drkit/replication"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

func regions(t *testing.T, names ...string) []*storage.Region {
	t.Helper()
	var out []*storage.Region
	for _, n := range names {
		st, err := file.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &storage.Region{Name: n, Store: st, Pipeline: &storage.Pipeline{Store: st, Region: n}})
	}
	return out
}

func TestCatalogKeepsNoPasswordAndMergesWithConfig(t *testing.T) {
	ctx := context.Background()
	regs := regions(t, "eu", "us")
	cat := &replication.Catalog{Cluster: "shop", Regions: regs}
	rec := replication.Record{Cluster: "shop", Name: "us-1", Engine: "mysql", Region: "us",
		DSN: "repl:s3cr3t@tcp(10.0.0.9:3306)/", Mode: "stream", Status: replication.RecordReady, Created: time.Now()}
	if err := cat.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := cat.Put(ctx, replication.Record{Name: "../x"}); err == nil || !strings.Contains(err.Error(), "replica name") {
		t.Fatalf("a bad name was accepted: %v", err)
	}
	for _, r := range regs {
		got, err := (&replication.Catalog{Cluster: "shop", Regions: []*storage.Region{r}}).Get(ctx, "us-1")
		if err != nil {
			t.Fatalf("region %s: %v", r.Name, err)
		}
		if strings.Contains(got.DSN, "s3cr3t") || !strings.Contains(got.DSN, config.Redacted) {
			t.Fatalf("region %s stores the DSN %q", r.Name, got.DSN)
		}
	}
	recs, err := cat.List(ctx)
	if err != nil || len(recs) != 1 {
		t.Fatalf("List = %v, %v", recs, err)
	}
	cl := config.Cluster{Name: "shop", DSN: "repl:pw@tcp(10.0.0.5:3306)/", Hosts: []string{"10.0.0.*"},
		Replicas: []config.Replica{{Name: "eu-1", Region: "eu", DSN: "repl:pw@tcp(10.0.0.6:3306)/"}}}
	merged := replication.Merge(cl, append(recs, replication.Record{Name: "eu-1", DSN: "other"}, replication.Record{Name: "old", Status: replication.RecordPromoted}))
	if len(merged) != 2 || merged[0].DSN != cl.Replicas[0].DSN || merged[1].DSN != "repl:pw@tcp(10.0.0.9:3306)/" {
		t.Fatalf("Merge = %+v", merged)
	}
}

func TestWithPasswordForEveryDSNForm(t *testing.T) {
	for _, tc := range []struct{ stored, cluster, want string }{
		{"postgres://u:" + config.Redacted + "@h:5432/db", "postgres://u:p%40ss@a/db", "postgres://u:p%40ss@h:5432/db"},
		{"host=h password=" + config.Redacted + " user=u", "host=a password='a b' user=u", "host=h password='a b' user=u"},
		{"u:" + config.Redacted + "@tcp(h:3306)/", "u:p@ss@tcp(a:3306)/", "u:p@ss@tcp(h:3306)/"},
		{"redis://:" + config.Redacted + "@h:6379", "redis://:pw@a:6379", "redis://:pw@h:6379"},
		{"u@tcp(h:3306)/", "u:pw@tcp(a:3306)/", "u@tcp(h:3306)/"},
	} {
		if got := replication.WithPassword(tc.stored, tc.cluster); got != tc.want {
			t.Errorf("WithPassword(%q, %q) = %q, want %q", tc.stored, tc.cluster, got, tc.want)
		}
		if strings.Contains(tc.stored, config.Redacted) && config.RedactDSN(tc.want) != tc.stored {
			t.Errorf("RedactDSN(%q) = %q, want %q", tc.want, config.RedactDSN(tc.want), tc.stored)
		}
	}
}

func TestPromotionNewestWins(t *testing.T) {
	ctx := context.Background()
	regs := regions(t, "eu", "us")
	if _, ok, err := (&replication.Catalog{Cluster: "c", Regions: regs}).Promotion(ctx); ok || err != nil {
		t.Fatalf("no promotion yet: ok=%v err=%v", ok, err)
	}
	old := replication.Promotion{Replica: "a", At: time.Now().Add(-time.Hour)}
	if err := (&replication.Catalog{Cluster: "c", Regions: regs}).Promoted(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := (&replication.Catalog{Cluster: "c", Regions: regs[1:]}).Promoted(ctx, replication.Promotion{Replica: "b", At: time.Now(), DSN: "postgres://u:x@h/db"}); err != nil {
		t.Fatal(err)
	}
	p, ok, err := (&replication.Catalog{Cluster: "c", Regions: regs}).Promotion(ctx)
	if err != nil || !ok || p.Replica != "b" || strings.Contains(p.DSN, ":x@") {
		t.Fatalf("Promotion = %+v, %v, %v", p, ok, err)
	}
}

func TestState(t *testing.T) {
	lag := func(v float64) *float64 { return &v }
	up := &monitor.ServerState{Up: true, InSync: true, LinkUp: true, LagSeconds: lag(1)}
	for _, tc := range []struct {
		name  string
		rec   *replication.Record
		probe *monitor.ServerState
		want  string
	}{
		{"creating", &replication.Record{Status: replication.RecordCreating}, nil, replication.StateCreating},
		{"not probed", nil, nil, replication.StateBroken},
		{"down", nil, &monitor.ServerState{}, replication.StateBroken},
		{"diverged", nil, &monitor.ServerState{Up: true, LinkUp: true}, replication.StateBroken},
		{"link down", nil, &monitor.ServerState{Up: true, InSync: true, LagSeconds: lag(0)}, replication.StateBroken},
		{"from store", &replication.Record{Mode: "from-store"}, &monitor.ServerState{Up: true, InSync: true, LagSeconds: lag(2)}, replication.StateStreaming},
		{"behind", nil, &monitor.ServerState{Up: true, InSync: true, LinkUp: true, LagSeconds: lag(600)}, replication.StateCatchingUp},
		{"streaming", &replication.Record{Status: replication.RecordReady}, up, replication.StateStreaming},
	} {
		if got := replication.State(tc.rec, tc.probe); got != tc.want {
			t.Errorf("%s: State = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A store is untrusted: a record naming a host the config does not trust, or
// asking for weaker TLS than the cluster's dsn, is not followed, and the
// cluster's password never goes to it.
func TestCatalogFollowsOnlyTrustedHosts(t *testing.T) {
	ctx := context.Background()
	regs := regions(t, "eu")
	cat := &replication.Catalog{Cluster: "orders", Regions: regs}
	cl := config.Cluster{Name: "orders", Engine: "postgres", Region: "eu",
		DSN:   "postgres://repl:topsecret@db1.internal:5432/postgres?sslmode=verify-full",
		Hosts: []string{"*.db.internal"}}
	for _, rec := range []replication.Record{
		{Name: "evil", Region: "eu", DSN: "postgres://repl:pw@attacker.example:5432/postgres?sslmode=verify-full", Status: replication.RecordReady},
		{Name: "plain", Region: "eu", DSN: "postgres://repl@db2.db.internal:5432/postgres?sslmode=disable", Status: replication.RecordReady},
		{Name: "good", Region: "eu", DSN: "postgres://repl:pw@db3.db.internal:5432/postgres?sslmode=verify-full", Status: replication.RecordReady},
	} {
		rec.Cluster, rec.Engine, rec.Created = "orders", "postgres", time.Now()
		if err := cat.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := cat.Promoted(ctx, replication.Promotion{Cluster: "orders", Replica: "evil", Region: "eu", DSN: "postgres://repl:x@attacker.example:5432/postgres?sslmode=verify-full", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	v, err := cat.View(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if v.PrimaryDSN != cl.DSN || v.Promotion != nil {
		t.Fatalf("a promotion to an untrusted host was followed: primary %s", config.RedactDSN(v.PrimaryDSN))
	}
	if len(v.Replicas) != 1 || v.Replicas[0].Name != "good" || !strings.Contains(v.Replicas[0].DSN, "topsecret") {
		t.Fatalf("replicas = %+v; want only good, with the cluster's password", v.Replicas)
	}
	for _, dsn := range []string{v.PrimaryDSN, v.Replicas[0].DSN} {
		if h := config.DSNHost(dsn); h == "attacker.example" {
			t.Fatalf("the view dials %s", h)
		}
	}
}
