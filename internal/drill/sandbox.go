package drill

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A sandbox folder is <root>/<cluster>-<region>-<unix nanos>, holding
// "owner" (the drill's process) and "pids" (the sandbox's processes), each a
// line "<pid> <start time>" (the start time in clock ticks since boot, from
// /proc/<pid>/stat, and the boot's id), so that a pid the kernel gave to
// another process since is never signalled. Only folders of that name that
// hold an owner file are ever removed: the root may be a folder shared with
// other things.

const (
	ownerFile = "owner"
	pidsFile  = "pids"
)

// sandboxName is a sandbox folder's name.
var sandboxName = regexp.MustCompile(`^[A-Za-z0-9._-]+-[0-9]{19}$`)

// checkRoot makes root if needed and refuses one that another user could
// have filled with fake sandboxes (owned by someone else, or writable by
// group or others).
func checkRoot(root string) error {
	if !filepath.IsAbs(root) {
		return fmt.Errorf("sandbox root %s: give an absolute path", root)
	}
	// Others may pass through (0711): a sandbox server may run as another
	// user (PostgreSQL as postgres) in a folder of its own inside.
	if err := os.MkdirAll(root, 0o711); err != nil {
		return fmt.Errorf("sandbox root %s: %w", root, err)
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return fmt.Errorf("sandbox root %s: %w", root, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("sandbox root %s must be a folder of this user (uid %d) that no one else can write (it is %s, uid %d): chmod go-w it or choose another (drill.sandbox, --sandbox-dir)",
			root, os.Geteuid(), fi.Mode(), st.Uid)
	}
	return nil
}

// newSandboxDir makes a new sandbox folder under root, owned by this
// process.
func newSandboxDir(root, cluster, region string) (string, error) {
	if err := checkRoot(root); err != nil {
		return "", err
	}
	dir := filepath.Join(root, fmt.Sprintf("%s-%s-%d", cluster, region, time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o711); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	id, ok := Identity(os.Getpid())
	if !ok {
		return "", errors.New("sandbox: cannot read this process's start time from /proc")
	}
	// Written whole or not at all: a drill reading it meanwhile must not see
	// an empty owner.
	tmp := filepath.Join(dir, ownerFile+".tmp")
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ownerFile)); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	return dir, nil
}

// identity is "<pid> <start ticks> <boot id>" of a running process.
func Identity(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" {
		return "", false
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return fmt.Sprintf("%d %s %s", pid, f[19], strings.TrimSpace(string(boot))), true
}

// same reports whether the process recorded as line still runs as that
// process.
func same(line string) (pid int, ok bool) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return 0, false
	}
	id, alive := Identity(pid)
	return pid, alive && id == strings.Join(f, " ")
}

// recordPID adds a sandbox process to dir's pids file.
func recordPID(dir string, pid int) error {
	id, ok := Identity(pid)
	if !ok {
		return fmt.Errorf("sandbox: process %d ended before it could be recorded", pid)
	}
	f, err := os.OpenFile(filepath.Join(dir, pidsFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("sandbox: record pid: %w", err)
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, id)
	return err
}

// removeSandbox stops the processes recorded in dir that still run as
// recorded and removes it.
func removeSandbox(dir string) error {
	b, _ := os.ReadFile(filepath.Join(dir, pidsFile))
	for _, line := range strings.Split(string(b), "\n") {
		if pid, ok := same(line); ok {
			stop(pid, line)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", dir, err)
	}
	return nil
}

// stop ends a sandbox process (its process group when it leads one):
// SIGTERM, then SIGKILL after 10 s, each only while it is still the
// recorded process.
func stop(pid int, line string) {
	signal := func(sig syscall.Signal) {
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			_ = syscall.Kill(-pid, sig)
			return
		}
		_ = syscall.Kill(pid, sig)
	}
	signal(syscall.SIGTERM)
	for range 100 {
		if _, ok := same(line); !ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, ok := same(line); ok {
		signal(syscall.SIGKILL)
	}
}

// CleanStale removes the sandboxes under root whose drill is gone (killed
// midway), stopping their processes, and returns how many it removed. A
// folder it cannot remove is logged and left for the next drill.
func CleanStale(root string, log *slog.Logger) int {
	entries, err := os.ReadDir(root)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("drill: cannot read the sandbox root", "root", root, "err", err)
		}
		return 0
	}
	n := 0
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if !e.IsDir() || !sandboxName.MatchString(e.Name()) || !stale(dir) {
			continue
		}
		log.Warn("removing a stale drill sandbox (its drill was killed)", "dir", dir)
		if err := removeSandbox(dir); err != nil {
			log.Warn("drill: cannot remove a stale sandbox", "dir", dir, "err", err)
			continue
		}
		n++
	}
	return n
}

// stale reports whether dir is a sandbox whose drill no longer runs: it
// holds an owner file naming a process that is gone.
func stale(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return false // not a sandbox, or not one yet: never removed
	}
	_, alive := same(strings.TrimSpace(string(b)))
	return !alive
}
