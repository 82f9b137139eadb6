package mysql_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/drill"
	"github.com/drkit/drkit/internal/testenv"
	mymon "github.com/drkit/drkit/monitor/mysql"
)

// TestDrill: drd ships a MariaDB primary (its heartbeat written, bases
// every 4 s) into two regions; drctl drill from region us restores into a
// throwaway mariadbd, finds the heartbeat within the flush interval and
// removes the sandbox; with the newest base's manifest damaged, the drill
// fails (exit 1) naming it.
func TestDrill(t *testing.T) {
	src := &testenv.MariaDB{}
	testenv.Start(t, src)
	e := newDrkitEnv(t, src, 200*time.Millisecond)
	drd, _ := e.startDrd(t)
	h, err := mymon.NewHeartbeat("shop", "drkit.heartbeat", src.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
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
	manifests := func() []string {
		m, _ := filepath.Glob(filepath.Join(e.work, "us", "shop", "base", "*", "manifest.json"))
		return m
	}
	testenv.WaitFor(t, 60*time.Second, "two bases in region us", func() bool { return len(manifests()) >= 2 })
	time.Sleep(time.Second)
	root := filepath.Join(testenv.SharedDir(t), "drills") // the server runs as mysql

	rep, code, out := runDrill(t, e, root)
	js, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("drill report:\n%s", js)
	if code != 0 || !rep.OK || rep.NewestSource != "heartbeat table drkit.heartbeat" || rep.RPOSeconds > 1.5 {
		t.Fatalf("drill: exit %d, RPO %.2f s from %q; want a pass with the heartbeat within 1.5 s\n%s", code, rep.RPOSeconds, rep.NewestSource, out)
	}
	var phases []string
	for _, p := range rep.Phases {
		phases = append(phases, p.Name)
	}
	if want := []string{"choose backup", "sandbox", "fetch base", "fetch log", "replay", "start", "check"}; !slices.Equal(phases, want) {
		t.Errorf("drill phases %v, want %v", phases, want)
	}
	if left, _ := os.ReadDir(root); len(left) != 0 {
		t.Errorf("the drill left %d sandbox folder(s)", len(left))
	}
	drillIntoTarget(t, e, root)

	// Stop the bases, then damage the newest manifest.
	_ = drd.Process.Kill()
	_ = drd.Wait()
	ms := manifests()
	newest := ms[len(ms)-1]
	if err := os.WriteFile(newest, []byte(`{"format_version": 1, "id": `), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, code, out = runDrill(t, e, root)
	id := filepath.Base(filepath.Dir(newest))
	if code != 1 || rep.OK || !strings.Contains(rep.Error, id) {
		t.Errorf("drill with backup %s's manifest damaged: exit %d, ok %v; want exit 1 naming it\n%s", id, code, rep.OK, out)
	}
}

// drillIntoTarget drills into a MariaDB the config names (drill.target): the
// drill passes and leaves no database behind; a target holding a table of
// its own is refused and keeps it.
func drillIntoTarget(t *testing.T, e *drkitEnv, root string) {
	t.Helper()
	target := &testenv.MariaDB{}
	testenv.Start(t, target)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	te := *e
	te.cfgPath = filepath.Join(e.work, "drill-target.yaml")
	cfg = fmt.Appendf(cfg, "    drill:\n      schedule: '@daily'\n      target: 'root@tcp(127.0.0.1:%d)/'\n", target.Port)
	if err := os.WriteFile(te.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	db := target.Open(t, "")
	userTables := func() (n int) {
		if err := db.QueryRow("SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN ('mysql','information_schema','performance_schema','sys')").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rep, code, out := runDrill(t, &te, root)
	if code != 0 || !rep.OK || rep.NewestSource != "heartbeat table drkit.heartbeat" {
		t.Fatalf("drill into drill.target: exit %d\n%s", code, out)
	}
	if n := userTables(); n != 0 {
		t.Errorf("the drill left %d table(s) in its target", n)
	}
	if _, err := db.Exec("CREATE DATABASE app"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE app.keep (id int)"); err != nil {
		t.Fatal(err)
	}
	rep, code, _ = runDrill(t, &te, root)
	if code != 1 || rep.OK || !strings.Contains(rep.Error, "app") {
		t.Errorf("drill into a target holding app.keep: exit %d, error %q; want exit 1 naming database app", code, rep.Error)
	}
	if n := userTables(); n != 1 {
		t.Errorf("the refused drill left %d table(s) in the target, want app.keep alone", n)
	}
}

func runDrill(t *testing.T, e *drkitEnv, root string) (drill.Report, int, string) {
	t.Helper()
	cmd := exec.Command(e.drctl, "drill", "--config", e.cfgPath, "--cluster", "shop", "--region", "us", "--sandbox-dir", root, "--json")
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
