package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver for database/sql
)

// serverIDs hands out distinct server_id values within a test binary.
var serverIDs atomic.Uint32

// MariaDB is a throwaway MariaDB server with the binlog on in ROW format, GTID, and
// a unique server_id; root has an empty password on 127.0.0.1.
type MariaDB struct {
	// ServerID is the server_id (option; default: a fresh one per server).
	ServerID uint32
	// Args are extra mariadbd options such as "--gtid-strict-mode=ON" (option).
	Args []string

	// Port is the TCP port on 127.0.0.1; set by Start.
	Port int
	// Dir is the server's folder (data folder, socket, logs); set by Start.
	Dir string

	primary *MariaDB
	acct    account
	proc    *proc
}

// StartMariaDB starts a MariaDB server and returns it.
func StartMariaDB(tb testing.TB) *MariaDB {
	tb.Helper()
	m := &MariaDB{}
	Start(tb, m)
	return m
}

// StartReplica starts a new server that replicates from m with GTID
// (MASTER_USE_GTID=slave_pos) and returns it once both replica threads run.
func (m *MariaDB) StartReplica(tb testing.TB) *MariaDB {
	tb.Helper()
	r := &MariaDB{primary: m, Args: m.Args}
	Start(tb, r)
	return r
}

// DSN returns a go-sql-driver DSN for database db ("" for none) as root.
func (m *MariaDB) DSN(db string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s?parseTime=true&multiStatements=true", m.Port, db)
}

// Open returns a database/sql handle to database db, closed when the test ends.
func (m *MariaDB) Open(tb testing.TB, db string) *sql.DB {
	tb.Helper()
	h, err := sql.Open("mysql", m.DSN(db))
	if err != nil {
		tb.Fatalf("open mariadb: %v", err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// Pid returns mariadbd's process id.
func (m *MariaDB) Pid() int { return m.proc.Pid() }

// Kill SIGKILLs the server, as a crash would.
func (m *MariaDB) Kill() error { return m.proc.kill() }

func (m *MariaDB) start(ctx context.Context, tb testing.TB) error {
	if docker, err := useDocker(); err != nil || docker {
		return dockerOr(err, func() error { return m.startDocker(ctx, tb) })
	}
	mariadbd, err := findBinary("mariadbd", "/usr/sbin")
	if err != nil {
		return err
	}
	install, err := findBinary("mariadb-install-db")
	if err != nil {
		return err
	}
	if m.acct, err = runAs("mysql"); err != nil {
		return err
	}
	if m.Dir, err = tempDir("mariadb", m.acct); err != nil {
		return err
	}
	registerCleanup(tb, cleanup(&m.proc, m.Dir, syscall.SIGTERM))
	data := filepath.Join(m.Dir, "data")
	installArgs := []string{"--no-defaults", "--user=mysql", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}
	// mariadb-install-db crashed (signal 11, "Unknown table
	// 'mysql.tmp_user_sys'") when several ran at once on this VM, from
	// several test binaries: one at a time across processes, and one retry
	// on a clean folder with the first failure kept in the log.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "drkit-mariadb-install.lock"))
	if err != nil {
		return err
	}
	err = runTool(ctx, m.acct, m.Dir, install, installArgs...)
	if err != nil {
		tb.Logf("testenv: retrying mariadb-install-db once after: %v", err)
		if rerr := os.RemoveAll(data); rerr == nil {
			err = runTool(ctx, m.acct, m.Dir, install, installArgs...)
		}
	}
	unlock()
	if err != nil {
		return err
	}
	if m.Port, err = freePort(); err != nil {
		return err
	}
	if m.ServerID == 0 {
		m.ServerID = 1000 + serverIDs.Add(1)
	}
	m.proc, err = startProc("mariadbd", m.acct, filepath.Join(m.Dir, "mariadbd.log"), nil, mariadbd, m.args(data)...)
	if err != nil {
		return err
	}
	if err := m.proc.waitReady(ctx, m.ping); err != nil {
		return err
	}
	if m.primary != nil {
		return m.follow(ctx)
	}
	return nil
}

func (m *MariaDB) args(data string) []string {
	args := []string{
		"--no-defaults", "--user=mysql",
		"--datadir=" + data,
		"--socket=" + filepath.Join(m.Dir, "mysqld.sock"),
		"--pid-file=" + filepath.Join(m.Dir, "mysqld.pid"),
		"--port=" + strconv.Itoa(m.Port),
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--server-id=" + strconv.FormatUint(uint64(m.ServerID), 10),
		"--log-bin=mysql-bin",
		"--binlog-format=ROW",
		"--log-slave-updates=ON",
		// Small and fast: tests kill processes, never the machine.
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=32M",
		"--innodb-flush-log-at-trx-commit=2",
		"--sync-binlog=0",
		"--max-connections=200",
	}
	return append(args, m.Args...)
}

func (m *MariaDB) ping(ctx context.Context) error {
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// follow points m at its primary with GTID auto-positioning and waits until both
// replication threads run.
func (m *MariaDB) follow(ctx context.Context) error {
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	stmt := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1", m.primary.Port)
	for _, q := range []string{stmt, "START SLAVE"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("replica setup %q: %w", q, err)
		}
	}
	return m.proc.waitReady(ctx, func(ctx context.Context) error {
		io, sqlThread, lastErr, err := slaveThreads(ctx, db)
		if err != nil {
			return err
		}
		if io != "Yes" || sqlThread != "Yes" {
			return fmt.Errorf("replica threads io=%s sql=%s (%s)", io, sqlThread, lastErr)
		}
		return nil
	})
}

// slaveThreads reads Slave_IO_Running, Slave_SQL_Running and the last error.
func slaveThreads(ctx context.Context, db *sql.DB) (io, sqlThread, lastErr string, err error) {
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return "", "", "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", "", "", err
	}
	if !rows.Next() {
		return "", "", "", fmt.Errorf("SHOW SLAVE STATUS returned no row")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", "", "", err
	}
	for i, c := range cols {
		switch c {
		case "Slave_IO_Running":
			io = vals[i].String
		case "Slave_SQL_Running":
			sqlThread = vals[i].String
		case "Last_Error", "Last_IO_Error":
			if vals[i].String != "" {
				lastErr = vals[i].String
			}
		}
	}
	return io, sqlThread, lastErr, rows.Err()
}

// Restart stops the server — SIGKILL when crash is set, as a power loss would,
// else a clean shutdown — and starts it again on the same port and data.
func (m *MariaDB) Restart(tb testing.TB, crash bool) {
	tb.Helper()
	var err error
	if crash {
		err = m.proc.kill()
	} else {
		err = m.proc.stop(syscall.SIGTERM, 30*time.Second)
	}
	if err != nil {
		tb.Fatalf("stop mariadbd: %v", err)
	}
	mariadbd, err := findBinary("mariadbd", "/usr/sbin")
	if err != nil {
		tb.Fatal(err)
	}
	m.proc, err = startProc("mariadbd", m.acct, filepath.Join(m.Dir, "mariadbd.log"), nil, mariadbd, m.args(filepath.Join(m.Dir, "data"))...)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.proc.waitReady(ctx, m.ping); err != nil {
		tb.Fatalf("restart mariadbd: %v", err)
	}
}

// lockFile takes an exclusive flock(2) on path, waiting for other processes.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
