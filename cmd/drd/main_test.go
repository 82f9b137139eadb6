package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
)

// TestMain lets a test run this binary as drd itself: the child gets real signals
// and a real exit code, as in production.
func TestMain(m *testing.M) {
	if os.Getenv("DRD_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "drkit.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func startDrd(t *testing.T, args ...string) (*exec.Cmd, *logBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "DRD_TEST_RUN_MAIN=1")
	logs := &logBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, logs
}

// logBuffer is drd's stderr, read by the test while drd writes it.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDrdServesAndStopsOnSIGTERM(t *testing.T) {
	addr := freeAddr(t)
	// A mongodb cluster (on FerretDB): drd ships its oplog and probes it.
	src := testenv.StartFerretDB(t)
	cfg := writeConfig(t, fmt.Sprintf("drd:\n  listen: %s\nregions:\n  - name: local\n    store: file://%s\n"+
		"clusters:\n  - {name: docs, engine: mongodb, region: local, dsn: '%s'}\n", addr, t.TempDir(), src.URL()))
	cmd, logs := startDrd(t, "--config", cfg)

	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get(t, base+"/healthz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drd did not serve /healthz within 10s; logs:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		code, body := get(t, base+"/readyz")
		if code == http.StatusOK && strings.Contains(body, "ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s; not ready within 10s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "drkit_build_info{") {
		t.Errorf("/metrics = %d, lacks drkit_build_info:\n%.500s", code, body)
	}
	if !strings.Contains(body, `drkit_store_up{region="local"} 1`) {
		t.Errorf("/metrics lacks drkit_store_up for the file region:\n%.2000s", body)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("drd exited with %v after SIGTERM, want 0; logs:\n%s", err, logs)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("drd still running 5s after SIGTERM; logs:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "region holds no oplog yet") || !strings.Contains(logs.String(), `"cluster":"docs"`) {
		t.Errorf("logs lack the mongodb cluster's oplog shipping:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "drd stopped") {
		t.Errorf("logs lack the clean-stop line:\n%s", logs)
	}
}

func TestDrdBadConfigExits2(t *testing.T) {
	cfg := writeConfig(t, "regions:\n  - name: a\n    store: ftp://x\n")
	cmd, logs := startDrd(t, "--config", cfg)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
		t.Fatalf("exit = %v, want %d", err, exitUsage)
	}
	if !strings.Contains(logs.String(), "drkit.yaml:3:") {
		t.Errorf("stderr does not name file:line:\n%s", logs)
	}
}

func TestDrdListenInUseFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := writeConfig(t, "regions: [{name: a, store: 'file:///tmp/a'}]\n")
	cmd, logs := startDrd(t, "--config", cfg, "--listen", ln.Addr().String())
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
		t.Fatalf("exit = %v, want %d", err, exitFailure)
	}
	if !strings.Contains(logs.String(), "drd.listen") {
		t.Errorf("error does not name drd.listen:\n%s", logs)
	}
}
