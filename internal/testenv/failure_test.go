package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The child half: when run with TESTENV_CHILD set, it starts Redis, records its pid
// and folder, then either fails (cleanup must still run) or hangs until killed
// (the parent-death signal must take Redis along).
func TestChildStartsRedis(t *testing.T) {
	mode := os.Getenv("TESTENV_CHILD")
	if mode == "" {
		t.Skip("runs only as the child of TestNoLeftoversWhen*; not a test of its own")
	}
	r := StartRedis(t)
	rec := fmt.Sprintf("%d %s", r.Pid(), r.Dir)
	if err := os.WriteFile(os.Getenv("TESTENV_RECORD"), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	if mode == "hang" {
		time.Sleep(time.Minute)
	}
	t.Fatal("failing on purpose: cleanup must still stop Redis")
}

func runChild(t *testing.T, mode string) (pid int, dir string) {
	t.Helper()
	record := filepath.Join(t.TempDir(), "record")
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildStartsRedis$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTENV_CHILD="+mode, "TESTENV_RECORD="+record)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var rec []byte
	deadline := time.Now().Add(30 * time.Second)
	for len(rec) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		rec, _ = os.ReadFile(record)
	}
	if mode == "hang" {
		_ = cmd.Process.Kill()
	}
	err := cmd.Wait()
	if err == nil {
		t.Fatal("the child test passed; it must fail or be killed")
	}
	fields := strings.Fields(string(rec))
	if len(fields) != 2 {
		t.Fatalf("child recorded %q", rec)
	}
	pid, _ = strconv.Atoi(fields[0])
	return pid, fields[1]
}

func assertGone(t *testing.T, pid int, dir string, checkDir bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis (pid %d) still runs after its test ended", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(dir); checkDir && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("folder %s remains after its test failed", dir)
	}
}

func TestNoLeftoversWhenTestFails(t *testing.T) {
	pid, dir := runChild(t, "fail")
	assertGone(t, pid, dir, true)
}

// A killed test binary runs no cleanup: the server must still die with it. Its
// folder stays (nothing could remove it), so remove it here.
func TestNoLeftoversWhenTestBinaryIsKilled(t *testing.T) {
	pid, dir := runChild(t, "hang")
	defer os.RemoveAll(dir)
	assertGone(t, pid, dir, false)
}
