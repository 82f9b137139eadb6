package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/drkit/drkit/replication"
)

// systemSchemas are never compared.
var systemSchemas = []string{"mysql", "information_schema", "performance_schema", "sys"}

// Side is one MariaDB server's side of a checksum comparison.
type Side struct {
	DB *sql.DB
}

// OpenSide connects to dsn for a comparison; close its DB when done.
func OpenSide(ctx context.Context, what, dsn string) (*Side, error) {
	db, err := open(ctx, what, dsn, 2)
	if err != nil {
		return nil, err
	}
	return &Side{DB: db}, nil
}

var (
	_ replication.PrimarySide = (*Side)(nil)
	_ replication.ReplicaSide = (*Side)(nil)
)

// Tables implements replication.PrimarySide: every base table outside the
// system schemas, with its primary key.
func (s *Side) Tables(ctx context.Context) ([]replication.Table, error) {
	q := `SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME
		FROM information_schema.COLUMNS c JOIN information_schema.TABLES t
		  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
		WHERE t.TABLE_TYPE = 'BASE TABLE' AND c.TABLE_SCHEMA NOT IN ('` + strings.Join(systemSchemas, "','") + `')
		ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION`
	rows, err := s.DB.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []replication.Table
	for rows.Next() {
		var schema, table, col string
		if err := rows.Scan(&schema, &table, &col); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].Schema != schema || out[n-1].Name != table {
			out = append(out, replication.Table{Schema: schema, Name: table})
		}
		t := &out[len(out)-1]
		t.Columns = append(t.Columns, col)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, s.primaryKeys(ctx, out)
}

// primaryKeys sets each table's primary-key columns, in the key's order.
func (s *Side) primaryKeys(ctx context.Context, tables []replication.Table) error {
	rows, err := s.DB.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE INDEX_NAME = 'PRIMARY' ORDER BY TABLE_SCHEMA, TABLE_NAME, SEQ_IN_INDEX`)
	if err != nil {
		return err
	}
	defer rows.Close()
	keys := map[string][]string{}
	for rows.Next() {
		var schema, table, col string
		if err := rows.Scan(&schema, &table, &col); err != nil {
			return err
		}
		keys[schema+"."+table] = append(keys[schema+"."+table], col)
	}
	for i := range tables {
		if k, ok := keys[tables[i].String()]; ok {
			tables[i].Key = k
		}
	}
	return rows.Err()
}

func from(t replication.Table) string { return ident(t.Schema) + "." + ident(t.Name) }

func keyList(t replication.Table) string {
	cols := make([]string, len(t.Key))
	for i, c := range t.Key {
		cols[i] = ident(c)
	}
	return strings.Join(cols, ", ")
}

// bound is "(k1, k2) op (?, ?)" and its arguments.
func bound(t replication.Table, op string, k replication.Key) (string, []any) {
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(k)), ", ")
	args := make([]any, len(k))
	for i, v := range k {
		args[i] = v
	}
	return "(" + keyList(t) + ") " + op + " (" + marks + ")", args
}

func where(t replication.Table, lo, hi replication.Key) (string, []any) {
	var conds []string
	var args []any
	if lo != nil {
		c, a := bound(t, ">=", lo)
		conds, args = append(conds, c), append(args, a...)
	}
	if hi != nil {
		c, a := bound(t, "<", hi)
		conds, args = append(conds, c), append(args, a...)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Next implements replication.PrimarySide.
func (s *Side) Next(ctx context.Context, t replication.Table, lo replication.Key, n int) (replication.Key, error) {
	w, args := where(t, lo, nil)
	q := fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s LIMIT 1 OFFSET %d", keyList(t), from(t), w, keyList(t), n)
	vals := make([]sql.RawBytes, len(t.Key))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	k := make(replication.Key, len(vals))
	for i, v := range vals {
		k[i] = string(v)
	}
	return k, rows.Err()
}

// Sum implements replication.Side: the row count and the XOR of every row's
// MD5 over its columns as bytes (NULLs marked apart from empty strings).
func (s *Side) Sum(ctx context.Context, t replication.Table, lo, hi replication.Key) (replication.Sum, error) {
	cols := make([]string, 0, len(t.Columns)+1)
	nulls := make([]string, 0, len(t.Columns))
	for _, c := range t.Columns {
		cols = append(cols, "CAST("+ident(c)+" AS BINARY)")
		nulls = append(nulls, "ISNULL("+ident(c)+")")
	}
	cols = append(cols, "CONCAT("+strings.Join(nulls, ", ")+")")
	w, args := where(t, lo, hi)
	q := fmt.Sprintf(`SELECT COUNT(*),
		COALESCE(BIT_XOR(CAST(CONV(SUBSTRING(h, 1, 16), 16, 10) AS UNSIGNED)), 0),
		COALESCE(BIT_XOR(CAST(CONV(SUBSTRING(h, 17, 16), 16, 10) AS UNSIGNED)), 0)
		FROM (SELECT MD5(CONCAT_WS('#', %s)) AS h FROM %s%s) x`, strings.Join(cols, ", "), from(t), w)
	var sum replication.Sum
	var a, b uint64
	if err := s.DB.QueryRowContext(ctx, q, args...).Scan(&sum.Rows, &a, &b); err != nil {
		return sum, err
	}
	sum.Hash = fmt.Sprintf("%016x%016x", a, b)
	return sum, nil
}

// Position implements replication.PrimarySide.
func (s *Side) Position(ctx context.Context) (string, error) {
	var pos string
	err := s.DB.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos)
	return pos, err
}

// WaitFor implements replication.ReplicaSide.
func (s *Side) WaitFor(ctx context.Context, pos string, timeout time.Duration) error {
	var res int
	if err := s.DB.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", pos, timeout.Seconds()).Scan(&res); err != nil {
		return err
	}
	if res != 0 {
		return fmt.Errorf("after %s: %w", timeout, replication.ErrNotCaughtUp)
	}
	return nil
}
