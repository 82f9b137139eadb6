package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/sandbox"
	mysnap "github.com/drkit/drkit/snapshots/mysql"
)

var _ engine.Driller = Engine{}

// Sandbox implements engine.Driller: a throwaway mariadbd (mariadb-install-db
// into dir, root without a password, TCP on 127.0.0.1 and a free port) that
// the restore fills (--target-dsn). Run as root, the server runs as the
// mysql user.
func (Engine) Sandbox(ctx context.Context, env engine.Env, dir string, record func(int) error) (engine.Sandbox, error) {
	mariadbd, err := findServer("mariadbd", "mysqld")
	if err != nil {
		return nil, err
	}
	install, err := findServer("mariadb-install-db", "mysql_install_db")
	if err != nil {
		return nil, err
	}
	// The server's files (data, socket, pid) are all in data/, the only
	// folder the mysql user gets: the sandbox folder, where drctl keeps the
	// pids it may signal, stays drctl's.
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, fmt.Errorf("mysql drill sandbox: %w", err)
	}
	runAs := ""
	if handed, err := sandbox.HandOver(data, "mysql"); err != nil {
		return nil, fmt.Errorf("mysql drill sandbox: %w", err)
	} else if handed {
		runAs = "--user=mysql"
	}
	args := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if runAs != "" {
		args = append(args, runAs)
	}
	out, err := exec.CommandContext(ctx, install, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mysql drill sandbox: %s: %w: %s", filepath.Base(install), err, lastLines(string(out), 5))
	}
	port, err := sandbox.FreePort()
	if err != nil {
		return nil, err
	}
	srvArgs := []string{"--no-defaults", "--datadir=" + data, "--socket=" + filepath.Join(data, "mysqld.sock"),
		"--pid-file=" + filepath.Join(data, "mysqld.pid"), "--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--skip-name-resolve", "--server-id=" + strconv.Itoa(1<<30+port), "--innodb-buffer-pool-size=128M"}
	if runAs != "" {
		srvArgs = append(srvArgs, runAs)
	}
	p, err := sandbox.Start(dir, "mariadbd", record, mariadbd, srvArgs...)
	if err != nil {
		return nil, err
	}
	dsn := fmt.Sprintf("root@tcp(127.0.0.1:%d)/", port)
	db, err := sql.Open("mysql", dsn+"?parseTime=true")
	if err != nil {
		p.Stop()
		return nil, err
	}
	s := &mysqlSandbox{proc: p, db: db, dsn: dsn, cluster: env.Cluster.Name, table: env.Cluster.Monitor.Heartbeat.Table}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := p.WaitReady(wctx, "mariadbd", dir, db.PingContext); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// findServer finds a server binary on PATH, beside drctl or in /usr/sbin.
func findServer(names ...string) (string, error) {
	if p, err := sandbox.Find(names...); err == nil {
		return p, nil
	}
	for _, n := range names {
		if p := filepath.Join("/usr/sbin", n); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("mysql drill sandbox: none of %s is installed (install mariadb-server)", strings.Join(names, ", "))
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// lastLines returns the tool output's error lines, else its last n lines
// (mariadb-install-db ends every failure with the same advice).
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	var errs []string
	for _, l := range lines {
		if strings.Contains(strings.ToLower(l), "error") {
			errs = append(errs, l)
		}
	}
	if len(errs) > 0 {
		return strings.Join(errs[:min(len(errs), n)], "\n")
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

type mysqlSandbox struct {
	proc           *sandbox.Proc
	db             *sql.DB
	dsn            string
	cluster, table string
}

func (s *mysqlSandbox) RestoreFlags() map[string]string {
	return map[string]string{"target-dsn": s.dsn}
}

// Start: the restore filled a running server.
func (s *mysqlSandbox) Start(context.Context) error { return nil }

// Newest reads the heartbeat row drd writes.
func (s *mysqlSandbox) Newest(ctx context.Context) (time.Time, string, bool, error) {
	var us int64
	err := s.db.QueryRowContext(ctx, "SELECT beat_us FROM "+s.table+" WHERE cluster = ?", s.cluster).Scan(&us)
	var me *driver.MySQLError
	switch {
	case errors.Is(err, sql.ErrNoRows), errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049): // no such table or database
		return time.Time{}, "", false, nil
	case err != nil:
		return time.Time{}, "", false, fmt.Errorf("read heartbeat %s: %w", s.table, err)
	}
	return time.UnixMicro(us), "heartbeat table " + s.table, true, nil
}

func (s *mysqlSandbox) Close() error {
	_ = s.db.Close()
	s.proc.Stop()
	return nil
}

var _ engine.TargetDriller = Engine{}

// DrillTarget implements engine.TargetDriller: the server at dsn, which
// must not be the cluster's primary or a replica.
func (Engine) DrillTarget(ctx context.Context, env engine.Env, dsn string) (engine.DrillTarget, error) {
	if err := engine.RefuseProduction(env.Cluster, dsn, mysqlAddr); err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("drill.target: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("drill.target: %w", err)
	}
	return &mysqlSandbox{db: db, dsn: dsn, cluster: env.Cluster.Name, table: env.Cluster.Monitor.Heartbeat.Table}, nil
}

// mysqlAddr is a MySQL DSN's address (host:port, or unix:path).
func mysqlAddr(dsn string) (string, error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	if cfg.Net == "unix" {
		return "unix:" + cfg.Addr, nil
	}
	return cfg.Addr, nil
}

// CheckEmpty implements engine.DrillTarget.
func (s *mysqlSandbox) CheckEmpty(ctx context.Context) error { return mysnap.CheckEmpty(ctx, s.db) }

// Clear implements engine.DrillTarget.
func (s *mysqlSandbox) Clear(ctx context.Context) error { return mysnap.ClearTarget(ctx, s.db) }
