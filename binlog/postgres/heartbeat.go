package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// HeartbeatTable is drd's heartbeat table, as the shipper needs to know it.
type HeartbeatTable struct {
	// DSN reaches the database that holds the table.
	DSN string
	// Table is [schema.]table, as monitor.heartbeat.table.
	Table string
	// FlushInterval is how long WAL that holds only heartbeats may wait.
	FlushInterval time.Duration
}

// lookupEvery is how often the table's files are looked up again: drd's
// heartbeat creates the table after the shipper starts, and a rewrite of the
// table (VACUUM FULL, TRUNCATE) gives it new files.
const lookupEvery = 30 * time.Second

// watch sends the table's files to out now and every lookupEvery until ctx
// ends. A failed lookup sends nothing: the shipper then treats all WAL alike.
func (h HeartbeatTable) watch(ctx context.Context, out chan heartbeatFiles, log *slog.Logger) {
	var last error
	for {
		f, err := h.lookup(ctx)
		switch {
		case err == nil:
			select {
			case <-out: // replace an unread older answer
			default:
			}
			out <- f
		case ctx.Err() == nil && (last == nil || last.Error() != err.Error()):
			log.Debug("heartbeat table not looked up; its WAL is shipped as any other", "table", h.Table, "err", err)
		}
		last = err
		select {
		case <-ctx.Done():
			return
		case <-time.After(lookupEvery):
		}
	}
}

// lookup reads the relation files of the table and its indexes, and the
// server's next transaction id.
func (h HeartbeatTable) lookup(ctx context.Context) (heartbeatFiles, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(h.DSN)
	if err != nil {
		return heartbeatFiles{}, fmt.Errorf("heartbeat dsn: %w", err)
	}
	delete(cfg.RuntimeParams, "replication")
	cfg.RuntimeParams["application_name"] = "drkit"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return heartbeatFiles{}, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `
		SELECT COALESCE(NULLIF(c.reltablespace, 0), d.dattablespace)::int8, d.oid::int8, pg_relation_filenode(c.oid)::int8
		FROM pg_class c, pg_database d
		WHERE d.datname = current_database() AND pg_relation_filenode(c.oid) IS NOT NULL
		  AND (c.oid = to_regclass($1) OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = to_regclass($1)))`, h.Table)
	if err != nil {
		return heartbeatFiles{}, fmt.Errorf("look up %s's files: %w", h.Table, err)
	}
	var f heartbeatFiles
	for rows.Next() {
		var spc, db, rel int64
		if err := rows.Scan(&spc, &db, &rel); err != nil {
			return heartbeatFiles{}, err
		}
		f.rels = append(f.rels, relFile{uint32(spc), uint32(db), uint32(rel)})
	}
	if err := rows.Err(); err != nil {
		return heartbeatFiles{}, fmt.Errorf("look up %s's files: %w", h.Table, err)
	}
	if len(f.rels) == 0 {
		return heartbeatFiles{}, fmt.Errorf("table %s does not exist (yet)", h.Table)
	}
	var next int64
	if err := conn.QueryRow(ctx, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8").Scan(&next); err != nil {
		return heartbeatFiles{}, fmt.Errorf("read the next transaction id: %w", err)
	}
	f.nextXID = uint32(next) // xid8 holds the epoch above the 32-bit xid
	return f, nil
}
