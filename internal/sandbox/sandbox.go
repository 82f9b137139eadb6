package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Nice is the CPU priority drills and their sandbox processes run at, so
// that a drill on the database's host does not starve the database.
const Nice = 10

// Proc is one sandbox process.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs bin with args in its own process group at priority Nice,
// output appended to dir/<name>.log, and records its pid.
func Start(dir, name string, record func(pid int) error, bin string, args ...string) (*Proc, error) {
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sandbox: start %s: %w", bin, err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	_ = Lower(cmd.Process.Pid)
	if record != nil {
		if err := record(cmd.Process.Pid); err != nil {
			p.Stop()
			return nil, err
		}
	}
	return p, nil
}

// Lower puts process pid (and the children it starts later) at CPU
// priority Nice and the lowest best-effort I/O priority, so that a drill on
// the database's host yields to the database.
func Lower(pid int) error {
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, pid, Nice); err != nil {
		return fmt.Errorf("nice %d: %w", pid, err)
	}
	const whoProcess, classBestEffort, lowest = 1, 2, 7
	if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, whoProcess, uintptr(pid), classBestEffort<<13|lowest); errno != 0 {
		return fmt.Errorf("ionice %d: %w", pid, errno)
	}
	return nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the process group: SIGTERM, then SIGKILL after 10 s.
func (p *Proc) Stop() {
	if p == nil { // a drill target: nothing of the drill's runs
		return
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
}

// WaitReady calls ready until it succeeds, the process exits or ctx ends;
// the error holds the end of the process's log (<dir>/<name>.log, which
// goes with the sandbox).
func (p *Proc) WaitReady(ctx context.Context, name, dir string, ready func(context.Context) error) error {
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("sandbox %s exited: %w; its log ends:\n%s", name, err, logTail(filepath.Join(dir, name+".log"), 10))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sandbox %s not ready: %w; its log ends:\n%s", name, err, logTail(filepath.Join(dir, name+".log"), 10))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail returns the last n lines of a log file.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// HandOver gives dir to the system user name when this process runs as
// root (database servers refuse to run as root), and nothing otherwise.
// It returns whether it did.
func HandOver(dir, name string) (bool, error) {
	if os.Geteuid() != 0 {
		return false, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return false, fmt.Errorf("drctl runs as root and the server must not, but there is no %s user: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return false, err
	}
	return true, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("sandbox: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ErrNoBinary is wrapped by Find when no binary of the names is on the
// machine.
var ErrNoBinary = errors.New("not found on PATH, beside drctl or in ./bin")

// Find returns the first of names found on PATH, beside this executable or
// in ./bin.
func Find(names ...string) (string, error) {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	dirs = append(dirs, "bin")
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
		for _, d := range dirs {
			p := filepath.Join(d, n)
			if info, err := os.Stat(p); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
				return filepath.Abs(p)
			}
		}
	}
	return "", fmt.Errorf("%v: %w", names, ErrNoBinary)
}
