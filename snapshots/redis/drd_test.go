package redis_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
)

// drdConfig writes a drd config shipping Redis cluster "cache" at dsn into
// file:// regions a and b under dir, and returns its path.
func drdConfig(t *testing.T, dir, dsn string) string {
	t.Helper()
	cfg := filepath.Join(dir, "drkit.yaml")
	yaml := fmt.Sprintf("drd:\n  listen: 127.0.0.1:0\nregions:\n  - {name: a, store: 'file://%[1]s/a'}\n  - {name: b, store: 'file://%[1]s/b'}\n"+
		"clusters:\n  - {name: cache, engine: redis, region: a, dsn: '%[2]s', flush_interval: 200ms}\n", dir, dsn)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startDrd starts the real drd binary on cfg (testenv.StartDrd).
func startDrd(t *testing.T, cfg string) *testenv.Drd { return testenv.StartDrd(t, cfg) }

// waitBase waits until region r holds a base backup of "cache".
func waitBase(t *testing.T, r *storage.Region) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "drd stored a base in region "+r.Name, func() bool {
		bases, _, _ := rdwal.ListBases(context.Background(), r.Pipeline, "cache")
		return len(bases) > 0
	})
}
