package redis_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
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

// drdProc is the real drd binary, its log kept for the test.
type drdProc struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	log bytes.Buffer
}

func (d *drdProc) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.Write(p)
}

// Log is what drd logged so far.
func (d *drdProc) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// Kill SIGKILLs drd and waits for it.
func (d *drdProc) Kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	_ = d.cmd.Wait()
}

// startDrd starts drd on cfg; it is killed when the test ends, and its log
// shown if the test failed.
func startDrd(t *testing.T, cfg string) *drdProc {
	t.Helper()
	d := &drdProc{cmd: exec.Command(testenv.Binary(t, "drd"), "--config", cfg)}
	d.cmd.Stderr = d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.Kill()
		}
		if t.Failed() {
			t.Logf("drd's log:\n%s", d.Log())
		}
	})
	return d
}

// waitBase waits until region r holds a base backup of "cache".
func waitBase(t *testing.T, r *storage.Region) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "drd stored a base in region "+r.Name, func() bool {
		bases, _, _ := rdwal.ListBases(context.Background(), r.Pipeline, "cache")
		return len(bases) > 0
	})
}
