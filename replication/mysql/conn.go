package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/drkit/drkit/internal/config"
)

// open returns a small pool to dsn with timeouts, session time zone UTC and
// values as text, and checks that the server answers and is MariaDB. what
// names the server in errors ("replica", "primary").
func open(ctx context.Context, what, dsn string, conns int) (*sql.DB, error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s dsn: %w", what, err)
	}
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, time.Minute, time.Minute
	cfg.ParseTime, cfg.MultiStatements = false, false
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s dsn: %w", what, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(conns)
	var version string
	if err := db.QueryRowContext(ctx, "SELECT @@version").Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s %s: %w (check the address, user and password)", what, config.RedactDSN(dsn), err)
	}
	if !strings.Contains(version, "MariaDB") {
		db.Close()
		return nil, fmt.Errorf("%s %s is %s: drkit replicates MariaDB only so far (MySQL 8 GTID sets are not supported yet)", what, config.RedactDSN(dsn), version)
	}
	return db, nil
}

// source is where a replica connects to: the primary DSN's address and user.
type source struct {
	host, port, user, password string
	tls                        bool
}

func sourceOf(dsn string) (source, error) {
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return source{}, fmt.Errorf("primary dsn: %w", err)
	}
	if cfg.Net != "tcp" {
		return source{}, fmt.Errorf("primary dsn %s: a replica in another region connects over TCP; give the primary's host:port (tcp(...))", config.RedactDSN(dsn))
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		host, port = cfg.Addr, "3306"
	}
	tls := cfg.TLSConfig != "" && cfg.TLSConfig != "false"
	return source{host: host, port: port, user: cfg.User, password: cfg.Passwd, tls: tls}, nil
}

// quote makes s a SQL string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// ident quotes a name with backticks.
func ident(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// slaveStatus is the part of SHOW SLAVE STATUS drkit reads.
type slaveStatus struct {
	host, port        string
	ioRunning, sqlRun string
	ioError, sqlError string
	usingGTID         string
	configured        bool
}

func readSlaveStatus(ctx context.Context, db *sql.DB) (slaveStatus, error) {
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return slaveStatus{}, fmt.Errorf("SHOW SLAVE STATUS: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return slaveStatus{}, err
	}
	if !rows.Next() {
		return slaveStatus{}, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return slaveStatus{}, err
	}
	get := func(name string) string {
		for i, c := range cols {
			if strings.EqualFold(c, name) {
				return vals[i].String
			}
		}
		return ""
	}
	return slaveStatus{configured: true, host: get("Master_Host"), port: get("Master_Port"),
		ioRunning: get("Slave_IO_Running"), sqlRun: get("Slave_SQL_Running"),
		ioError: get("Last_IO_Error"), sqlError: get("Last_SQL_Error"), usingGTID: get("Using_Gtid")}, nil
}
