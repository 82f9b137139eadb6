package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// BinDir returns the folder of the PostgreSQL server binaries for serverVersion
// ("15.19 (Debian ...)"): Debian's /usr/lib/postgresql/<major>/bin, else the one
// holding pg_ctl on $PATH.
func BinDir(serverVersion string) (string, error) {
	major, _, _ := strings.Cut(strings.Fields(serverVersion + " ")[0], ".")
	if major != "" {
		d := filepath.Join("/usr/lib/postgresql", major, "bin")
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Dir(real), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	return "", fmt.Errorf("PostgreSQL %s server binaries not found (looked in /usr/lib/postgresql/%s/bin and $PATH; found %v): install that major version", serverVersion, major, dirs)
}

// Start starts the restored server in dir as the folder's owner and waits until
// it accepts connections and recovery has ended. It never runs PostgreSQL as root.
//
// Recovery runs with replaySettings (memory for the pages replay touches, no
// restartpoint every max_wal_size), and the server is then restarted with the
// folder's own settings: replay, one process applying WAL, is what a restore
// waits on once the WAL arrives faster than it is applied.
//
// The recovery run does not fsync (fsync=off): its restartpoints and its
// end-of-recovery checkpoint write to the page cache only. Before the
// server starts for real, the whole file system of the folder is synced
// (syncfs), once, which costs less than PostgreSQL's file-by-file fsyncs;
// a crash before that ends the restore without success, never with an
// unsynced folder reported as restored.
func Start(ctx context.Context, dir, binDir string, o StartOptions) error {
	if err := start(ctx, dir, binDir, "in production", replaySettings(binDir), o.Env); err != nil {
		return err
	}
	if o.Recovered != nil {
		o.Recovered()
	}
	if err := pgCtl(ctx, dir, binDir, nil, "stop", "-m", "fast", "-w", "-t", "600"); err != nil {
		return fmt.Errorf("restart after recovery: %w", err)
	}
	if err := syncFS(dir); err != nil {
		return fmt.Errorf("restart after recovery: sync %s: %w", dir, err)
	}
	return start(ctx, dir, binDir, "in production", nil, o.Env)
}

// StartOptions are the extras of a Start.
type StartOptions struct {
	// Recovered, if set, is called once recovery has ended, before the
	// restart (a drill's "replay" phase ends there).
	Recovered func()
	// Env is added to the server's environment, and so its
	// restore_command's.
	Env []string
}

// syncFS flushes the file system holding dir to disk.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// StartStandby starts a restored standby in dir as the folder's owner and
// waits until it accepts read-only connections (it has replayed to a
// consistent point and keeps replaying).
func StartStandby(ctx context.Context, dir, binDir string) error {
	return start(ctx, dir, binDir, "in archive recovery", nil, nil)
}

// replaySettings are the server options of a recovery run: shared_buffers of a
// quarter of the machine's memory (128 MiB to 8 GiB; the default 128 MiB made
// replay evict and write back pages it needed again), and restartpoints only
// every 64 GB or hour of WAL (each one writes every dirty buffer). They hold
// for that run only: pg_ctl's command line, not the folder's config.
func replaySettings(binDir string) []string {
	mem := int64(128 << 20)
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		mem = max(mem, min(int64(si.Totalram)*int64(si.Unit)/4, 8<<30))
	}
	out := []string{"-c", fmt.Sprintf("shared_buffers=%dMB", mem>>20), "-c", "max_wal_size=64GB", "-c", "checkpoint_timeout=1h",
		"-c", "fsync=off", "-c", "maintenance_io_concurrency=64"}
	if major(binDir) >= 15 {
		// Prefetching reads further ahead of replay (PostgreSQL 15+).
		out = append(out, "-c", "wal_decode_buffer_size=4MB", "-c", "recovery_prefetch=on")
	}
	return out
}

// major reads the major version from a binaries folder's pg_ctl --version.
func major(binDir string) int {
	out, err := exec.Command(filepath.Join(binDir, "pg_ctl"), "--version").Output()
	if err != nil {
		return 0
	}
	f := strings.Fields(string(out)) // pg_ctl (PostgreSQL) 15.19 (Debian ...)
	if len(f) < 3 {
		return 0
	}
	n, _ := strconv.Atoi(strings.SplitN(f[2], ".", 2)[0])
	return n
}

// pgCtl runs pg_ctl as the folder's owner.
func pgCtl(ctx context.Context, dir, binDir string, env []string, args ...string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_ctl"), append(args, "-D", dir)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if uint32(os.Geteuid()) != st.Uid {
		// Groups: none. drctl often runs as root, and root's supplementary
		// groups must not follow the server (and the wal-fetch it runs).
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: []uint32{}}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s\nits log ends:\n%s", args[0], err, strings.TrimSpace(string(out)), logTail(filepath.Join(dir, "drkit-restore.log")))
	}
	return nil
}

func start(ctx context.Context, dir, binDir, want string, settings, env []string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Sys().(*syscall.Stat_t).Uid == 0 {
		return fmt.Errorf("%s is owned by root and PostgreSQL must not run as root: chown it (and restore into a folder whose parent the postgres user owns)", dir)
	}
	logFile := filepath.Join(dir, "drkit-restore.log")
	args := []string{"start", "-l", logFile, "-w", "-t", "3600"}
	if len(settings) > 0 {
		args = append(args, "-o", strings.Join(settings, " "))
	}
	if err := pgCtl(ctx, dir, binDir, env, args...); err != nil {
		return err
	}
	for {
		state, err := clusterState(ctx, binDir, dir)
		if err != nil {
			return err
		}
		if state == want {
			return nil
		}
		if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("PostgreSQL stopped during recovery (state %q); its log ends:\n%s", state, logTail(logFile))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// clusterState reads "Database cluster state" from pg_controldata.
func clusterState(ctx context.Context, binDir, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "pg_controldata"), dir).Output()
	if err != nil {
		return "", fmt.Errorf("pg_controldata %s: %w", dir, err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Database cluster state:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("pg_controldata printed no cluster state")
}

func logTail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// Stop stops the server in dir at once (pg_ctl stop -m immediate), as its
// folder's owner: for throwaway servers (restore drills) only.
func Stop(ctx context.Context, dir, binDir string) error {
	return pgCtl(ctx, dir, binDir, nil, "stop", "-m", "immediate", "-w", "-t", "60")
}
