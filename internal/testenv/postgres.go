package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway PostgreSQL server: a primary with wal_level=replica and
// replication connections allowed (trust auth on loopback), or a streaming standby
// made by StartStandby.
type Postgres struct {
	// Settings are extra postgresql.conf settings (option; set before Start).
	Settings map[string]string
	// InitArgs are extra initdb arguments for a primary (--wal-segsize=512).
	InitArgs []string

	// Port is the TCP port on 127.0.0.1; set by Start.
	Port int
	// Dir is the server's folder (data folder, socket, log); set by Start.
	Dir string
	// DataDir is the data folder (PGDATA); set by Start.
	DataDir string
	// BinDir holds the server binaries used (postgres, initdb, pg_basebackup, ...).
	BinDir string

	primary *Postgres
	acct    account
	proc    *proc
}

// StartPostgres starts a PostgreSQL primary and returns it.
func StartPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	p := &Postgres{}
	Start(tb, p)
	return p
}

// StartStandby makes a streaming standby of p from a fresh pg_basebackup and
// starts it; it follows p over streaming replication.
func (p *Postgres) StartStandby(tb testing.TB) *Postgres {
	tb.Helper()
	s := &Postgres{primary: p, Settings: p.Settings}
	Start(tb, s)
	return s
}

// DSN returns a URL connection string for database db as the postgres superuser.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// ReplicationDSN returns a connection string for a physical replication connection.
func (p *Postgres) ReplicationDSN() string {
	return p.DSN("postgres") + "&replication=true"
}

// Pid returns the postmaster's process id.
func (p *Postgres) Pid() int { return p.proc.Pid() }

// Kill SIGKILLs the server and all its backends, as a crash would.
func (p *Postgres) Kill() error { return p.proc.kill() }

// Stop shuts the server down cleanly (fast shutdown).
func (p *Postgres) Stop() error { return p.proc.stop(syscall.SIGINT, 30*time.Second) }

// Restart starts the server again on its data folder and port after Kill or
// Stop (crash recovery after a Kill).
func (p *Postgres) Restart(tb testing.TB) {
	tb.Helper()
	var err error
	p.proc, err = startProc("postgres", p.acct, filepath.Join(p.Dir, "postgres.log"), nil,
		filepath.Join(p.BinDir, "postgres"), p.args()...)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.proc.waitReady(ctx, p.ping); err != nil {
		tb.Fatalf("restart postgres: %v", err)
	}
}

func (p *Postgres) start(ctx context.Context, tb testing.TB) error {
	if docker, err := useDocker(); err != nil || docker {
		return dockerOr(err, func() error { return p.startDocker(ctx, tb) })
	}
	var err error
	if p.BinDir, err = pgBinDir(); err != nil {
		return err
	}
	if p.acct, err = runAs("postgres"); err != nil {
		return err
	}
	if p.Dir, err = tempDir("pg", p.acct); err != nil {
		return err
	}
	registerCleanup(tb, cleanup(&p.proc, p.Dir, syscall.SIGINT))
	p.DataDir = filepath.Join(p.Dir, "data")
	if err := p.initData(ctx); err != nil {
		return err
	}
	if p.Port, err = freePort(); err != nil {
		return err
	}
	p.proc, err = startProc("postgres", p.acct, filepath.Join(p.Dir, "postgres.log"), nil,
		filepath.Join(p.BinDir, "postgres"), p.args()...)
	if err != nil {
		return err
	}
	return p.proc.waitReady(ctx, p.ping)
}

// initData runs initdb for a primary, or pg_basebackup -R for a standby.
func (p *Postgres) initData(ctx context.Context) error {
	if p.primary == nil {
		args := append([]string{"-D", p.DataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"}, p.InitArgs...)
		return runTool(ctx, p.acct, p.Dir, filepath.Join(p.BinDir, "initdb"), args...)
	}
	return runTool(ctx, p.acct, p.Dir, filepath.Join(p.BinDir, "pg_basebackup"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(p.primary.Port), "-U", "postgres",
		"-D", p.DataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync")
}

// args are the server's settings, given as -c flags so that a standby copied by
// pg_basebackup does not inherit the primary's port.
func (p *Postgres) args() []string {
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(p.Port),
		"unix_socket_directories": p.Dir,
		"wal_level":               "replica",
		"max_wal_senders":         "10",
		"max_replication_slots":   "10",
		"hot_standby":             "on",
		"shared_buffers":          "32MB",
		"max_connections":         "50",
		// The tests kill processes, never the machine: fsync buys nothing here.
		"fsync":            "off",
		"log_min_messages": "warning",
	}
	for k, v := range p.Settings {
		settings[k] = v
	}
	args := []string{"-D", p.DataDir}
	for _, k := range sortedKeys(settings) {
		args = append(args, "-c", k+"="+settings[k])
	}
	return args
}

func (p *Postgres) ping(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}
