package testenv

import (
	"bytes"
	"os/exec"
	"sync"
	"syscall"
	"testing"
)

// Drd is the real drd binary running on a config, its log kept for the
// test: the tests that kill it (SIGKILL) as a disaster would.
type Drd struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	log bytes.Buffer
}

// StartDrd starts drd --config cfg; it is killed when the test ends, and
// its log shown if the test failed.
func StartDrd(tb testing.TB, cfg string) *Drd {
	tb.Helper()
	d := &Drd{cmd: exec.Command(Binary(tb, "drd"), "--config", cfg)}
	d.cmd.Stderr = d
	if err := d.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.Kill()
		}
		if tb.Failed() {
			tb.Logf("drd's log:\n%s", d.Log())
		}
	})
	return d
}

// Write implements io.Writer for drd's stderr.
func (d *Drd) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.Write(p)
}

// Log is what drd logged so far.
func (d *Drd) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// Kill SIGKILLs drd and waits for it.
func (d *Drd) Kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	_ = d.cmd.Wait()
}
