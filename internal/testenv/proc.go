package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// proc is a server process in its own process group, with its output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error
}

// startProc starts bin as acct with its output appended to logPath.
func startProc(name string, acct account, logPath string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Dir(logPath)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: stop() can kill the server and every child it forked.
	// Pdeathsig: a test binary that dies (timeout panic, SIGKILL) takes it along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: acct.cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the server's process id.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail returns the last lines of the server's log, for error messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	return tail(string(b), 15)
}

// waitReady polls check until it succeeds, the process exits, or ctx ends.
func (p *proc) waitReady(ctx context.Context, check func(context.Context) error) error {
	delay := 20 * time.Millisecond
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready (%v); its log ends:\n%s", p.name, p.waitErr, p.logTail())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready in time (last check: %v); its log ends:\n%s", p.name, err, p.logTail())
		case <-time.After(delay):
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}

// stop sends sig, waits up to grace for a clean exit, then kills the whole process
// group and waits until no process of it remains.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) error {
	if p == nil {
		return nil
	}
	pgid := p.cmd.Process.Pid
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	// Children of the server (PostgreSQL backends) share its group; wait for them.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s: processes of group %d still alive 10s after SIGKILL", p.name, pgid)
}

// kill SIGKILLs the server's process group at once, as a crash would.
func (p *proc) kill() error { return p.stop(syscall.SIGKILL, 0) }

// cleanup stops p (if it started) and removes dir; for t.Cleanup.
func cleanup(p **proc, dir string, sig syscall.Signal) func() error {
	return func() error {
		var err error
		if *p != nil {
			err = (*p).stop(sig, 10*time.Second)
		}
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", dir, rmErr))
		}
		return err
	}
}

// registerCleanup runs fn at the end of the test and reports its failure.
func registerCleanup(tb interface {
	Cleanup(func())
	Errorf(string, ...any)
}, fn func() error) {
	tb.Cleanup(func() {
		if err := fn(); err != nil {
			tb.Errorf("testenv cleanup: %v", err)
		}
	})
}
