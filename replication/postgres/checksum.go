package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/replication"
)

// Side is one PostgreSQL server's side of a checksum comparison, in the
// DSN's database.
type Side struct {
	Pool *pgxpool.Pool
}

var (
	_ replication.PrimarySide = (*Side)(nil)
	_ replication.ReplicaSide = (*Side)(nil)
)

// OpenSide connects to dsn for a comparison; close its Pool when done.
func OpenSide(ctx context.Context, what, dsn string) (*Side, error) {
	return OpenSideIn(ctx, what, dsn, "")
}

// OpenSideIn connects to database (the DSN's own when "") with dsn's
// address and credentials.
func OpenSideIn(ctx context.Context, what, dsn, database string) (*Side, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s dsn: %w", what, err)
	}
	if database != "" {
		cfg.ConnConfig.Database = database
		what += " database " + database
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.ConnConfig.RuntimeParams["TimeZone"] = "UTC"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, config.RedactDSN(dsn), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s %s: %w (check the address, user and password)", what, config.RedactDSN(dsn), err)
	}
	return &Side{Pool: pool}, nil
}

// Databases lists the databases a comparison covers (those that take
// connections, templates left out) and the one s is connected to.
func (s *Side) Databases(ctx context.Context) (all []string, current string, err error) {
	rows, err := s.Pool.Query(ctx, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
	if err != nil {
		return nil, "", fmt.Errorf("list databases: %w", err)
	}
	if all, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, "", fmt.Errorf("list databases: %w", err)
	}
	if err := s.Pool.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
		return nil, "", fmt.Errorf("current database: %w", err)
	}
	return all, current, nil
}

// Tables implements replication.PrimarySide: the database's permanent tables
// (partitioned ones as a whole) outside the system schemas, with their
// primary keys. Unlogged tables are skipped: a standby has them empty.
func (s *Side) Tables(ctx context.Context) ([]replication.Table, error) {
	const q = `SELECT n.nspname, c.relname,
	  coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
	    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
	    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
	    WHERE i.indrelid = c.oid AND i.indisprimary), '{}'),
	  coalesce((SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord) FROM pg_index i
	    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
	    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
	    WHERE i.indrelid = c.oid AND i.indisprimary), '{}')
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence = 'p'
	  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
	ORDER BY 1, 2`
	rows, err := s.Pool.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (replication.Table, error) {
		var t replication.Table
		err := r.Scan(&t.Schema, &t.Name, &t.Key, &t.KeyTypes)
		return t, err
	})
}

func from(t replication.Table) string {
	return pgx.Identifier{t.Schema, t.Name}.Sanitize()
}

func keyList(t replication.Table, suffix string) string {
	cols := make([]string, len(t.Key))
	for i, c := range t.Key {
		cols[i] = pgx.Identifier{c}.Sanitize() + suffix
	}
	return strings.Join(cols, ", ")
}

// where bounds the key to [lo, hi), casting the text bounds to the key's types.
func where(t replication.Table, lo, hi replication.Key) (string, []any) {
	var conds []string
	var args []any
	for _, b := range []struct {
		op string
		k  replication.Key
	}{{">=", lo}, {"<", hi}} {
		if b.k == nil {
			continue
		}
		marks := make([]string, len(b.k))
		for i, v := range b.k {
			args = append(args, v)
			marks[i] = fmt.Sprintf("$%d::%s", len(args), t.KeyTypes[i])
		}
		conds = append(conds, "("+keyList(t, "")+") "+b.op+" ("+strings.Join(marks, ", ")+")")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Next implements replication.PrimarySide.
func (s *Side) Next(ctx context.Context, t replication.Table, lo replication.Key, n int) (replication.Key, error) {
	w, args := where(t, lo, nil)
	q := fmt.Sprintf("SELECT ARRAY[%s] FROM %s%s ORDER BY %s LIMIT 1 OFFSET %d", keyList(t, "::text"), from(t), w, keyList(t, ""), n)
	var k []string
	err := s.Pool.QueryRow(ctx, q, args...).Scan(&k)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	return k, err
}

// Sum implements replication.Side: the row count and the MD5 of the rows'
// text forms' MD5s, in key order (whole rows' order without a key).
func (s *Side) Sum(ctx context.Context, t replication.Table, lo, hi replication.Key) (replication.Sum, error) {
	order := "r::text"
	if len(t.Key) > 0 {
		order = keyList(t, "")
	}
	w, args := where(t, lo, hi)
	q := fmt.Sprintf("SELECT count(*), coalesce(md5(string_agg(md5(r::text), '' ORDER BY %s)), '') FROM %s AS r%s", order, from(t), w)
	var sum replication.Sum
	err := s.Pool.QueryRow(ctx, q, args...).Scan(&sum.Rows, &sum.Hash)
	return sum, err
}

// Position implements replication.PrimarySide.
func (s *Side) Position(ctx context.Context) (string, error) {
	var lsn string
	err := s.Pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
	return lsn, err
}

// WaitFor implements replication.ReplicaSide.
func (s *Side) WaitFor(ctx context.Context, pos string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var ok *bool
		if err := s.Pool.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", pos).Scan(&ok); err != nil {
			return err
		}
		if ok == nil {
			return fmt.Errorf("the server is not a standby (pg_last_wal_replay_lsn is NULL)")
		}
		if *ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, replication.ErrNotCaughtUp)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
