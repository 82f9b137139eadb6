package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long one server may take to become ready.
const startTimeout = 2 * time.Minute

// Server is a server testenv can start: *Postgres, *MariaDB, *Redis, *MinIO,
// *VersityGW, *Prometheus.
type Server interface {
	start(ctx context.Context, tb testing.TB) error
}

// Start starts servers in parallel and fails the test if any of them cannot start.
// Each server's fields that end in options (see its type) may be set before the
// call; the others are filled in once it runs.
func Start(tb testing.TB, servers ...Server) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			began := time.Now()
			errs[i] = s.start(ctx, tb)
			if errs[i] == nil {
				tb.Logf("testenv: %T ready in %s", s, time.Since(began).Round(time.Millisecond))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
}

// useDocker reports whether DRKIT_TEST_PROVIDER selects the testcontainers provider.
func useDocker() (bool, error) {
	switch p := os.Getenv("DRKIT_TEST_PROVIDER"); p {
	case "", "local":
		return false, nil
	case "docker":
		return true, nil
	default:
		return false, fmt.Errorf("DRKIT_TEST_PROVIDER=%q is not known; use local (the default) or docker", p)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// repoRoot returns the module root (the folder holding go.mod), or "".
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// findBinary looks for name in $PATH, then in the project's ./bin (where `make deps`
// installs MinIO and versitygw), then in extra folders.
func findBinary(name string, extra ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs := extra
	if root := repoRoot(); root != "" {
		dirs = append([]string{filepath.Join(root, "bin")}, extra...)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (looked in $PATH and %s): run `make deps`", name, strings.Join(dirs, ", "))
}

// pgBinDir returns the folder of the newest installed PostgreSQL's server binaries.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	p, err := findBinary("postgres")
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", p, err)
	}
	return filepath.Dir(real), nil
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// account is the OS user a server runs as; nil credential means "as ourselves".
type account struct {
	cred *syscall.Credential
}

// runAs returns the account for name when running as root (servers such as
// PostgreSQL refuse root), else the current user.
func runAs(name string) (account, error) {
	if os.Geteuid() != 0 {
		return account{}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, fmt.Errorf("tests run as root and need the %s user (created by its Debian package): %w; run `make deps`", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return account{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}}, nil
}

// tempDir makes a fresh folder owned by acct. It lives under os.TempDir rather than
// t.TempDir because the latter's parents are root-only (0700) and the server user
// could not reach it.
func tempDir(kind string, acct account) (string, error) {
	dir, err := os.MkdirTemp("", "drkit-"+kind+"-")
	if err != nil {
		return "", fmt.Errorf("make %s folder: %w", kind, err)
	}
	if acct.cred != nil {
		if err := os.Chown(dir, int(acct.cred.Uid), int(acct.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	return dir, nil
}

// runTool runs a short-lived command (initdb, pg_basebackup, ...) as acct and
// returns its output in the error when it fails.
func runTool(ctx context.Context, acct account, dir, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: acct.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, errorLines(string(out), 20))
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// errorLines returns the lines of s that report an error, else its last n
// lines: tools such as mariadb-install-db bury the cause under advice.
func errorLines(s string, n int) string {
	var errs []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(strings.ToUpper(l), "ERROR") {
			errs = append(errs, l)
		}
	}
	if len(errs) == 0 {
		return tail(s, n)
	}
	return tail(strings.Join(errs, "\n"), n)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FindBinary returns the path of a server binary as the servers here are
// found: on $PATH, else in the repository's bin (make deps).
func FindBinary(tb testing.TB, name string) string {
	tb.Helper()
	p, err := findBinary(name)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return p
}
