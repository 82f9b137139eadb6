package postgres_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/drill"
	pgmon "github.com/drkit/drkit/monitor/postgres"
)

// TestDrill: drctl drill --deep-check (the real binary: PostgreSQL runs its
// wal-fetch) restores from region us into a sandbox it starts, finds drd's
// heartbeat row within the flush interval, pg_amcheck finds every table and
// index sound, and the sandbox and its server are removed;
// with the WAL after the backup deleted from the region, the drill fails
// (exit 1).
func TestDrill(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	ctx, cancel := context.WithCancel(context.Background())
	h, err := pgmon.NewHeartbeat("orders", "drkit_heartbeat", e.pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := h.Beat(ctx, time.Now()); err != nil && ctx.Err() == nil {
				t.Errorf("heartbeat: %v", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; h.Close() })
	e.backup(t)
	conn := connect(t, e.pg.Port)
	for range 3 { // WAL segments after the backup's, for the gap below
		time.Sleep(300 * time.Millisecond)
		if _, err := conn.Exec(ctx, "SELECT pg_switch_wal()"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	e.waitShipped(t, conn)
	root := filepath.Join(e.work, "drills")

	rep, code, out := drillRun(t, e, root, "--deep-check")
	js, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("drill report:\n%s", js)
	var phases []string
	for _, p := range rep.Phases {
		phases = append(phases, p.Name)
	}
	if code != 0 || !rep.OK || !slices.Equal(phases, []string{"choose backup", "sandbox", "fetch base", "verify base", "fetch log", "replay", "start", "check", "deep check"}) {
		t.Fatalf("drill: exit %d\n%s", code, out)
	}
	if rep.NewestSource != "heartbeat table drkit_heartbeat" || rep.RPOSeconds > 1.5 || rep.BytesFetched == 0 {
		t.Errorf("drill: RPO %.2f s from %q, %d bytes; want the heartbeat within 1.5 s", rep.RPOSeconds, rep.NewestSource, rep.BytesFetched)
	}
	// The WAL after the backup came through the server's own wal-fetch
	// runs: their reads are in the report.
	if fetchLog := rep.Phases[slices.IndexFunc(rep.Phases, func(p drill.Phase) bool { return p.Name == "fetch log" })]; fetchLog.Seconds <= 0 {
		t.Errorf("drill: fetch log took %.3f s; want the wal-fetch runs' time (their stats not read?)", fetchLog.Seconds)
	}
	if left, _ := os.ReadDir(root); len(left) != 0 {
		t.Errorf("the drill left %d sandbox folder(s)", len(left))
	}

	// A WAL segment gone from region us, with WAL after it: a gap.
	walDir := filepath.Join(e.work, "us", "orders", "wal")
	entries, err := os.ReadDir(walDir)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string // complete segments: <24 hex>.<sha>.<codec> directly in wal/
	for _, d := range entries {
		if name, _, _ := strings.Cut(d.Name(), "."); !d.IsDir() && len(name) == 24 {
			segs = append(segs, filepath.Join(walDir, d.Name()))
		}
	}
	slices.Sort(segs)
	if len(segs) < 3 {
		t.Fatalf("region us holds %d WAL segments, want 3 or more: %v", len(segs), segs)
	}
	gone := segs[len(segs)-2]
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	rep, code, out = drillRun(t, e, root)
	if code != 1 || rep.OK || !strings.Contains(rep.Error, strings.SplitN(filepath.Base(gone), ".", 2)[0]) {
		t.Errorf("drill with WAL segment %s gone: exit %d, ok %v; want exit 1 naming it\n%s", filepath.Base(gone), code, rep.OK, out)
	}
	if left, _ := os.ReadDir(root); len(left) != 0 {
		t.Errorf("the failed drill left %d sandbox folder(s)", len(left))
	}
}

func drillRun(t *testing.T, e *env, root string, args ...string) (drill.Report, int, string) {
	t.Helper()
	cmd := exec.Command(e.drctl, append([]string{"drill", "--config", e.cfgPath, "--cluster", "orders", "--region", "us", "--sandbox-dir", root, "--json"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep drill.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("drill --json: %v\n%s%s", err, b, stderr.String())
	}
	return rep, code, string(b) + stderr.String()
}
