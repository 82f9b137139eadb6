package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	binlog "github.com/drkit/drkit/binlog/mysql"
)

// systemDBs are never backed up or restored.
var systemDBs = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true}

// snapshot is the consistent point: worker connections inside one consistent
// snapshot each, the GTID position and the schema at that point.
type snapshot struct {
	workers  []*worker
	version  string
	pos      binlog.Pos
	at       time.Time
	tables   []*table
	schema   Schema
	lockHeld time.Duration
}

func (s *snapshot) close() {
	for _, w := range s.workers {
		w.close()
	}
}

// sessionSetup makes a connection read (and write) values as bytes, in UTC.
const sessionSetup = "SET SESSION time_zone='+00:00', character_set_results=binary, character_set_client=utf8mb4, character_set_connection=utf8mb4"

// openSnapshot blocks commits for as long as it takes the workers to open
// their snapshots and to read the position and schema. MariaDB's BACKUP STAGE
// BLOCK_COMMIT does this without waiting for running queries; FLUSH TABLES
// WITH READ LOCK is the fallback.
func openSnapshot(ctx context.Context, db *sql.DB, cfg *driver.Config, workers int, rangeRows int64) (*snapshot, error) {
	lock, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer lock.Close()
	s := &snapshot{}
	if err := lock.QueryRowContext(ctx, "SELECT @@version").Scan(&s.version); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if !strings.Contains(s.version, "MariaDB") {
		return nil, fmt.Errorf("server %s is MySQL; drkit snapshots MariaDB only so far", s.version)
	}
	began := time.Now()
	unlock, err := blockCommits(ctx, lock)
	if err != nil {
		return nil, err
	}
	err = s.underLock(ctx, cfg, lock, workers)
	if uerr := unlock(); uerr != nil && err == nil {
		err = uerr
	}
	s.lockHeld = time.Since(began)
	if err != nil {
		s.close()
		return nil, err
	}
	if err := s.readUsers(ctx, lock); err != nil {
		s.close()
		return nil, err
	}
	if err := s.planRanges(ctx, rangeRows); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func blockCommits(ctx context.Context, c *sql.Conn) (unlock func() error, err error) {
	if _, err := c.ExecContext(ctx, "SET SESSION lock_wait_timeout=60"); err != nil {
		return nil, err
	}
	stages := []string{"BACKUP STAGE START", "BACKUP STAGE BLOCK_DDL", "BACKUP STAGE BLOCK_COMMIT"}
	for i, st := range stages {
		if _, err := c.ExecContext(ctx, st); err != nil {
			if i > 0 {
				c.ExecContext(ctx, "BACKUP STAGE END")
			}
			if _, ferr := c.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); ferr != nil {
				return nil, fmt.Errorf("block commits for the snapshot point: %s: %v; FLUSH TABLES WITH READ LOCK: %w (the user needs the RELOAD privilege)", st, err, ferr)
			}
			return func() error { _, err := c.ExecContext(context.Background(), "UNLOCK TABLES"); return err }, nil
		}
	}
	return func() error { _, err := c.ExecContext(context.Background(), "BACKUP STAGE END"); return err }, nil
}

// underLock opens the workers' snapshots and reads the position and schema.
func (s *snapshot) underLock(ctx context.Context, cfg *driver.Config, lock *sql.Conn, workers int) error {
	for range workers {
		w, err := dialWorker(ctx, cfg)
		if err != nil {
			return fmt.Errorf("open worker connection: %w", err)
		}
		s.workers = append(s.workers, w)
		for _, q := range []string{sessionSetup, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT"} {
			if err := w.exec(q); err != nil {
				return fmt.Errorf("worker %s: %w", q, err)
			}
		}
	}
	var pos string
	var at float64
	if err := lock.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos, UNIX_TIMESTAMP(NOW(6))").Scan(&pos, &at); err != nil {
		return fmt.Errorf("read the GTID position: %w", err)
	}
	var err error
	if s.pos, err = binlog.ParsePos(pos); err != nil {
		return err
	}
	s.at = time.Unix(0, int64(at*1e9)).UTC()
	return s.readSchema(ctx, lock)
}

func (s *snapshot) readSchema(ctx context.Context, c *sql.Conn) error {
	dbs, err := queryStrings(ctx, c, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return err
	}
	for _, db := range dbs {
		if systemDBs[db] {
			continue
		}
		create, err := showCreate(ctx, c, "SHOW CREATE DATABASE "+quote(db), 1)
		if err != nil {
			return err
		}
		s.schema.Databases = append(s.schema.Databases, Object{Name: db, Create: create})
		if err := s.readDB(ctx, c, db); err != nil {
			return fmt.Errorf("database %s: %w", db, err)
		}
	}
	return nil
}

func (s *snapshot) readDB(ctx context.Context, c *sql.Conn, db string) error {
	rows, err := queryRows(ctx, c, "SELECT TABLE_NAME, TABLE_TYPE, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", db)
	if err != nil {
		return err
	}
	for _, r := range rows {
		name, typ := r[0], r[1]
		if typ == "VIEW" {
			create, err := showCreate(ctx, c, fmt.Sprintf("SHOW CREATE VIEW %s.%s", quote(db), quote(name)), 1)
			if err != nil {
				return err
			}
			s.schema.Views = append(s.schema.Views, Object{DB: db, Name: name, Create: create})
			continue
		}
		if typ != "BASE TABLE" {
			continue // SEQUENCEs and system versioned tables: not yet
		}
		create, err := showCreate(ctx, c, fmt.Sprintf("SHOW CREATE TABLE %s.%s", quote(db), quote(name)), 1)
		if err != nil {
			return err
		}
		s.schema.Tables = append(s.schema.Tables, Object{DB: db, Name: name, Create: create})
		t := &table{idx: len(s.tables), db: db, name: name}
		fmt.Sscan(r[2], &t.estRows)
		if err := readColumns(ctx, c, t); err != nil {
			return fmt.Errorf("table %s: %w", name, err)
		}
		s.tables = append(s.tables, t)
	}
	return s.readRoutines(ctx, c, db)
}

// readColumns fills the stored (not generated) columns and the single integer
// primary key, if there is one.
func readColumns(ctx context.Context, c *sql.Conn, t *table) error {
	rows, err := queryRows(ctx, c, `SELECT COLUMN_NAME, DATA_TYPE, IS_GENERATED, COLUMN_KEY FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, t.db, t.name)
	if err != nil {
		return err
	}
	var pks []string
	intPK := false
	for _, r := range rows {
		name, typ, generated, key := r[0], strings.ToLower(r[1]), r[2], r[3]
		if generated == "ALWAYS" {
			continue
		}
		switch typ {
		case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
			return fmt.Errorf("column %s is spatial (%s): not supported by drkit snapshots yet", name, typ)
		}
		col := Column{Name: name, Bit: typ == "bit"}
		expr := quote(name)
		switch {
		case col.Bit:
			expr = "CAST(" + expr + " AS UNSIGNED)"
		case typ == "year":
			// Four digits: LOAD DATA reads the string "0" as 2000, while
			// YEAR 0 is 0000.
			expr = "LPAD(" + expr + ", 4, '0')"
		}
		t.cols = append(t.cols, col)
		t.exprs = append(t.exprs, expr)
		if key == "PRI" {
			pks = append(pks, name)
			intPK = strings.HasSuffix(typ, "int")
		}
	}
	if len(pks) == 1 && intPK {
		t.pk = pks[0]
	}
	return nil
}

func (s *snapshot) readRoutines(ctx context.Context, c *sql.Conn, db string) error {
	routines, err := queryRows(ctx, c, "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?", db)
	if err != nil {
		return err
	}
	for _, r := range routines {
		o, err := showCreateObject(ctx, c, fmt.Sprintf("SHOW CREATE %s %s.%s", r[1], quote(db), quote(r[0])), db, r[0])
		if err != nil {
			return err
		}
		s.schema.Routines = append(s.schema.Routines, o)
	}
	triggers, err := queryStrings(ctx, c, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY ACTION_ORDER", db)
	if err != nil {
		return err
	}
	for _, name := range triggers {
		o, err := showCreateObject(ctx, c, fmt.Sprintf("SHOW CREATE TRIGGER %s.%s", quote(db), quote(name)), db, name)
		if err != nil {
			return err
		}
		s.schema.Triggers = append(s.schema.Triggers, o)
	}
	events, err := queryStrings(ctx, c, "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?", db)
	if err != nil {
		return err
	}
	for _, name := range events {
		o, err := showCreateObject(ctx, c, fmt.Sprintf("SHOW CREATE EVENT %s.%s", quote(db), quote(name)), db, name)
		if err != nil {
			return err
		}
		s.schema.Events = append(s.schema.Events, o)
	}
	return nil
}

// readUsers reads accounts and grants (not part of the consistent point: they
// are not transactional).
func (s *snapshot) readUsers(ctx context.Context, c *sql.Conn) error {
	rows, err := queryRows(ctx, c, "SELECT User, Host FROM mysql.user WHERE User NOT IN ('', 'mariadb.sys', 'mysql.sys', 'mysql.session') AND is_role = 'N' ORDER BY User, Host")
	if err != nil {
		return fmt.Errorf("list users (the backup user needs SELECT on mysql.user): %w", err)
	}
	for _, r := range rows {
		acct := fmt.Sprintf("'%s'@'%s'", escapeString(r[0]), escapeString(r[1]))
		create, err := showCreate(ctx, c, "SHOW CREATE USER "+acct, 0)
		var myErr *driver.MySQLError
		if errors.As(err, &myErr) && myErr.Number == 1133 {
			// In mysql.user but not loaded (a host name under skip-name-resolve):
			// the server itself ignores the account.
			continue
		}
		if err != nil {
			return err
		}
		grants, err := queryStrings(ctx, c, "SHOW GRANTS FOR "+acct)
		if err != nil {
			return err
		}
		s.schema.Users = append(s.schema.Users, User{Name: acct, Create: create, Grants: grants})
	}
	return nil
}

// planRanges splits big tables with an integer primary key into key ranges,
// reading their bounds inside the snapshot.
func (s *snapshot) planRanges(ctx context.Context, rangeRows int64) error {
	w := s.workers[0]
	for _, t := range s.tables {
		if t.pk == "" || t.estRows < 2*rangeRows {
			continue
		}
		q := fmt.Sprintf("SELECT MIN(%s), MAX(%s) FROM %s.%s", quote(t.pk), quote(t.pk), quote(t.db), quote(t.name))
		lo, hi, ok, err := w.bounds(ctx, q)
		if err != nil {
			return fmt.Errorf("table %s.%s: key bounds: %w", t.db, t.name, err)
		}
		if !ok {
			continue
		}
		n := t.estRows / rangeRows
		step := max((hi-lo)/n+1, 1)
		for k := lo; ; k += step {
			if k+step > hi {
				t.ranges = append(t.ranges, keyRange{lo: k})
				break
			}
			t.ranges = append(t.ranges, keyRange{lo: k, hi: k + step})
		}
	}
	return nil
}

// showCreate returns column col of the first row of a SHOW CREATE statement.
func showCreate(ctx context.Context, c *sql.Conn, q string, col int) (string, error) {
	_, rows, err := queryTable(ctx, c, q)
	if err != nil {
		return "", err
	}
	if len(rows) == 0 {
		return "", fmt.Errorf("%s: no row", q)
	}
	return rows[0][col], nil
}

// showCreateObject reads SHOW CREATE PROCEDURE/FUNCTION/TRIGGER/EVENT, whose
// columns vary but always include sql_mode and a "Create ..." or "SQL Original
// Statement" column.
func showCreateObject(ctx context.Context, c *sql.Conn, q, db, name string) (Object, error) {
	o := Object{DB: db, Name: name}
	cols, rows, err := queryTable(ctx, c, q)
	if err != nil {
		return o, err
	}
	if len(rows) > 0 {
		for i, col := range cols {
			switch {
			case col == "sql_mode":
				o.SQLMode = rows[0][i]
			case strings.HasPrefix(col, "Create ") || col == "SQL Original Statement":
				o.Create = rows[0][i]
			}
		}
	}
	if o.Create == "" {
		return o, fmt.Errorf("%s: no definition returned (the backup user may lack the privilege to see it)", q)
	}
	return o, nil
}

// queryTable runs q and returns its column names and every row as strings
// (NULL as ""); an error names the statement.
func queryTable(ctx context.Context, c *sql.Conn, q string, args ...any) ([]string, [][]string, error) {
	rows, err := c.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", firstLine(q), err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, nil, err
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out [][]string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", firstLine(q), err)
	}
	return cols, out, nil
}

func queryRows(ctx context.Context, c *sql.Conn, q string, args ...any) ([][]string, error) {
	_, rows, err := queryTable(ctx, c, q, args...)
	return rows, err
}

func firstLine(q string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(q), "\n")
	return l
}

func queryStrings(ctx context.Context, c *sql.Conn, q string, args ...any) ([]string, error) {
	rows, err := queryRows(ctx, c, q, args...)
	var out []string
	for _, r := range rows {
		out = append(out, r[0])
	}
	return out, err
}

func escapeString(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}
