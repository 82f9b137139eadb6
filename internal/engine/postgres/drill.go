package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/sandbox"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
)

var _ engine.Driller = Engine{}

// Sandbox implements engine.Driller: the restore writes a new data folder
// under dir, which Start opens to local connections without a password
// (the sandbox's own pg_hba.conf, never the source's) and starts on a free
// port with its socket in the folder. Run as root, dir is handed to the
// postgres user: PostgreSQL never runs as root.
func (Engine) Sandbox(ctx context.Context, env engine.Env, dir string, record func(int) error) (engine.Sandbox, error) {
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, fmt.Errorf("postgres drill sandbox: %w", err)
	}
	// Only the data folder is the postgres user's: the sandbox folder, where
	// drctl keeps the pids it may signal, stays drctl's.
	if _, err := sandbox.HandOver(data, "postgres"); err != nil {
		return nil, fmt.Errorf("postgres drill sandbox: %w", err)
	}
	port, err := sandbox.FreePort()
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(env.Cluster.HeartbeatDSN())
	if err != nil {
		return nil, fmt.Errorf("postgres drill sandbox: the heartbeat dsn: %w", err)
	}
	return &pgSandbox{data: data, port: port, record: record, user: cfg.User, database: cfg.Database,
		cluster: env.Cluster.Name, table: env.Cluster.Monitor.Heartbeat.Table, phase: env.Enter}, nil
}

type pgSandbox struct {
	data, bin      string
	port           int
	record         func(int) error
	user, database string
	cluster, table string
	started        bool
	phase          func(string)
}

// fetchStats is the file the server's drctl wal-fetch runs append their
// reads to (sandbox.FetchStatsEnv): in the data folder, the one place the
// postgres user may write.
func (s *pgSandbox) fetchStats() string { return filepath.Join(s.data, "drkit-drill-fetch-stats") }

// VerifyBase implements engine.BaseVerifier: pg_verifybackup checks every
// restored file's size and checksum against the backup's backup_manifest,
// and the WAL the backup needs, before the server first starts (the start
// changes pg_hba.conf and writes the folder).
func (s *pgSandbox) VerifyBase(ctx context.Context) error {
	bin, err := s.binDir()
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "pg_verifybackup"), s.data).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_verifybackup %s: %w: %s", s.data, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// LogFetched implements engine.LogFetcher: what the server's wal-fetch runs
// read, and the time recovery waited on them (it runs one at a time).
func (s *pgSandbox) LogFetched() (int64, time.Duration, error) {
	return sandbox.ReadFetchStats(s.fetchStats())
}

// binDir finds the server binaries of the restored folder's version.
func (s *pgSandbox) binDir() (string, error) {
	if s.bin != "" {
		return s.bin, nil
	}
	version, err := os.ReadFile(filepath.Join(s.data, "PG_VERSION"))
	if err != nil {
		return "", fmt.Errorf("the restored folder: %w", err)
	}
	s.bin, err = pgsnap.BinDir(strings.TrimSpace(string(version)))
	return s.bin, err
}

func (s *pgSandbox) RestoreFlags() map[string]string {
	return map[string]string{"target-dir": s.data, "port": strconv.Itoa(s.port)}
}

// Start trusts local connections in the sandbox, starts the server and
// waits until recovery has ended (as drctl restore --start does).
func (s *pgSandbox) Start(ctx context.Context) error {
	if _, err := s.binDir(); err != nil {
		return err
	}
	hba := filepath.Join(s.data, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("# drkit drill sandbox: local connections only\nlocal all all trust\n"), 0o600); err != nil {
		return fmt.Errorf("sandbox pg_hba.conf: %w", err)
	}
	if err := chownLike(hba, s.data); err != nil {
		return err
	}
	s.started = true
	// The postmaster is recorded as soon as it runs: recovery may take long,
	// and a drill killed meanwhile must leave it to the next drill to stop.
	recorded := make(chan struct{})
	watchCtx, stop := context.WithCancel(ctx)
	go func() {
		defer close(recorded)
		for watchCtx.Err() == nil {
			if pid, err := postmasterPID(s.data); err == nil && s.record(pid) == nil {
				return
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	s.phase("replay")
	err := pgsnap.Start(ctx, s.data, s.bin, pgsnap.StartOptions{
		Recovered: func() { s.phase("start") },
		Env:       []string{sandbox.FetchStatsEnv + "=" + s.fetchStats()},
	})
	stop()
	<-recorded
	return err
}

// chownLike gives path the owner of like.
func chownLike(path, like string) error {
	fi, err := os.Stat(like)
	if err != nil {
		return err
	}
	uid, gid := ownerOf(fi)
	return os.Chown(path, uid, gid)
}

// postmasterPID is the running server's pid (postmaster.pid's first line).
func postmasterPID(data string) (int, error) {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

// Newest reads the heartbeat row drd writes (for clusters with replicas or
// a drill). Without it there is no commit time to read: PostgreSQL keeps
// none unless track_commit_timestamp is on, and the drill fails saying so.
func (s *pgSandbox) Newest(ctx context.Context) (time.Time, string, bool, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return time.Time{}, "", false, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database = s.data, uint16(s.port), s.user, s.database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return time.Time{}, "", false, fmt.Errorf("connect to the restored server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var us int64
	err = conn.QueryRow(ctx, "SELECT beat_us FROM "+pgx.Identifier(strings.Split(s.table, ".")).Sanitize()+" WHERE cluster = $1", s.cluster).Scan(&us)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return time.UnixMicro(us), "heartbeat table " + s.table, true, nil
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000"): // no table or schema
		return time.Time{}, "", false, nil
	}
	return time.Time{}, "", false, fmt.Errorf("read the heartbeat %s: %w", s.table, err)
}

var _ engine.DeepChecker = (*pgSandbox)(nil)

// DeepCheck runs pg_amcheck on every database of the restored server:
// every table's pages and every B-tree index, and that each index holds
// every heap tuple (--heapallindexed); amcheck is installed in the
// sandbox where missing.
func (s *pgSandbox) DeepCheck(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, filepath.Join(s.bin, "pg_amcheck"), "--host", s.data, "--port", strconv.Itoa(s.port),
		"--username", s.user, "--install-missing", "--heapallindexed", "--all").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_amcheck found problems (%w):\n%s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (s *pgSandbox) Close() error {
	if !s.started || s.bin == "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	return pgsnap.Stop(ctx, s.data, s.bin)
}

func ownerOf(fi os.FileInfo) (uid, gid int) {
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}
