package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

var (
	buildMu  sync.Mutex
	builtBin = map[string]string{}
)

// Binary builds ./cmd/<name> once per test process into <repo>/bin/test (kept
// as a build cache, git-ignored) and returns its path. Tests use it where a
// program must run as a separate process: PostgreSQL runs drctl wal-fetch as
// the postgres user, and crash tests SIGKILL drd.
func Binary(tb testing.TB, name string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builtBin[name]; ok {
		return p
	}
	root := repoRoot()
	if root == "" {
		tb.Fatal("testenv: cannot find the module root to build " + name)
	}
	dir := filepath.Join(root, "bin", "test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("testenv: go build ./cmd/%s: %v\n%s", name, err, b)
	}
	builtBin[name] = out
	return out
}

// SharedDir makes a folder that the postgres and mysql users can read (0755),
// removed when the test ends: for config files and file:// regions that a
// server's own commands (restore_command) must read.
func SharedDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "drkit-shared-")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// OwnedDir makes an empty folder owned by user (when running as root), removed
// when the test ends: the parent of a restored data folder.
func OwnedDir(tb testing.TB, user string) string {
	tb.Helper()
	acct, err := runAs(user)
	if err != nil {
		tb.Fatal(err)
	}
	dir, err := tempDir("owned", acct)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// StopDataDir stops a PostgreSQL server that something other than testenv
// started in dataDir (a restore's pg_ctl start), at the end of the test.
func StopDataDir(tb testing.TB, binDir, dataDir string) {
	tb.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); err != nil {
			return
		}
		acct, _ := runAs("postgres")
		cmd := exec.Command(filepath.Join(binDir, "pg_ctl"), "stop", "-D", dataDir, "-m", "immediate", "-w")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: acct.cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Errorf("testenv: stop the restored server: %v\n%s", err, out)
		}
	})
}

// Tool returns the path of a tool `make deps` installs (helm, promtool, ...):
// $PATH, then ./bin. The test fails, naming `make deps`, when it is missing.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := findBinary(name)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return p
}
