package redis

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/all"
)

// drctl status: a region holding the primary's stream (a base, no chunk
// yet: status read offset 0 and no lag for it before) lags 0 seconds and
// no more bytes than the primary's keepalives; once the shipper stops and the primary writes on, the region
// lags by those bytes and by the seconds since its last command.
func TestStatusShowsLag(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "drkit.yaml")
	yaml := fmt.Sprintf("regions:\n  - {name: a, store: 'file://%s/a'}\nclusters:\n  - {name: c, engine: redis, region: a, dsn: '%s', flush_interval: 200ms}\n", dir, r.URL())
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	region, err := regions.Open(ctx, cfg, "a", storage.RegionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env := engine.Env{Config: cfg, Cluster: cfg.Clusters[0], Log: testenv.Logger(t)}
	status := func() RegionStatus {
		rows := Engine{}.Status(ctx, env)
		if len(rows) != 1 {
			t.Fatalf("status rows: %d, want 1", len(rows))
		}
		s := rows[0].Value.(RegionStatus)
		if s.Error != "" {
			t.Fatalf("status of region a: %s", s.Error)
		}
		return s
	}
	sh := Engine{}.NewShipper(env.Cluster, []*storage.Region{region}, env.Log)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = sh.Run(runCtx); close(done) }()
	c := r.Client(t)
	c.Set(ctx, "k", 1, 0)
	testenv.WaitFor(t, 20*time.Second, "status shows no lag", func() bool {
		s := status()
		return s.LagBytes != nil && *s.LagBytes <= keepalives && *s.LagSeconds == 0 && s.ReplID != ""
	})
	cancel()
	<-done
	c.Set(ctx, "later", strings.Repeat("x", 1000), 0)
	time.Sleep(1100 * time.Millisecond)
	s := status()
	if s.LagBytes == nil || *s.LagBytes <= 0 || *s.LagSeconds < 1 {
		t.Fatalf("status after the primary wrote on without drd: %+v; want lag in bytes and at least 1 s", s)
	}
	if rows := (Engine{}).Status(ctx, env); rows[0].Cells[5] == "-" || rows[0].Cells[5] == "?" {
		t.Errorf("the LAG S column reads %q", rows[0].Cells[5])
	}
}
