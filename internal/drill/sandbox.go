package drill

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A sandbox folder is <root>/<cluster>-<region>-<unix nanos>, holding
// "owner" (the drill's pid) and "pids" (the sandbox's processes, one per
// line).

const (
	ownerFile = "owner"
	pidsFile  = "pids"
)

// newSandboxDir makes a new sandbox folder under root, owned by this
// process.
func newSandboxDir(root, cluster, region string) (string, error) {
	// Others may pass through (0711): a sandbox server may run as another
	// user (PostgreSQL as postgres) in its own folder.
	if err := os.MkdirAll(root, 0o711); err != nil {
		return "", fmt.Errorf("sandbox root %s: %w", root, err)
	}
	dir := filepath.Join(root, fmt.Sprintf("%s-%s-%d", cluster, region, time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	return dir, nil
}

// recordPID adds a sandbox process to dir's pids file.
func recordPID(dir string, pid int) error {
	f, err := os.OpenFile(filepath.Join(dir, pidsFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("sandbox: record pid: %w", err)
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, pid)
	return err
}

// removeSandbox stops the processes recorded in dir and removes it.
func removeSandbox(dir string) error {
	b, _ := os.ReadFile(filepath.Join(dir, pidsFile))
	for _, line := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(line); err == nil && pid > 0 {
			stop(pid)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", dir, err)
	}
	return nil
}

// stop ends a sandbox process (its process group): SIGTERM, then SIGKILL
// after 10 s.
func stop(pid int) {
	if syscall.Kill(-pid, syscall.SIGTERM) != nil && syscall.Kill(pid, syscall.SIGTERM) != nil {
		return // gone
	}
	for range 100 {
		if gone(pid) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// gone reports whether pid has ended: no such process, or a zombie its
// parent has not reaped yet.
func gone(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] == 'Z'
	}
	return false
}

// CleanStale removes the sandboxes under root whose drill is gone (killed
// midway), stopping their processes, and returns how many it removed.
func CleanStale(root string, log *slog.Logger) (int, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sandbox root %s: %w", root, err)
	}
	n := 0
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if !e.IsDir() || alive(dir) {
			continue
		}
		log.Warn("removing a stale drill sandbox (its drill was killed)", "dir", dir)
		if err := removeSandbox(dir); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// alive reports whether dir's owning drill still runs.
func alive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		// Being made this instant, or not a sandbox: leave it unless old.
		info, serr := os.Stat(dir)
		return serr == nil && time.Since(info.ModTime()) < time.Minute
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
