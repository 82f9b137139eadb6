package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Heartbeat writes the cluster's heartbeat row on the primary.
type Heartbeat struct {
	cluster, table string
	pool           *pgxpool.Pool
	// created is set once the table is known to exist; Beat is called from
	// one goroutine.
	created bool
}

// NewHeartbeat returns a writer into table over dsn; it connects lazily.
func NewHeartbeat(cluster, table, dsn string) (*Heartbeat, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("heartbeat dsn: %w", err)
	}
	cfg.MaxConns = 1
	cfg.ConnConfig.RuntimeParams["application_name"] = "drkit-heartbeat"
	delete(cfg.ConnConfig.RuntimeParams, "replication")
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	return &Heartbeat{cluster: cluster, table: table, pool: pool}, nil
}

// Beat implements monitor.Heartbeater. The first beat creates the table.
func (h *Heartbeat) Beat(ctx context.Context, at time.Time) error {
	if err := h.create(ctx); err != nil {
		return err
	}
	_, err := h.pool.Exec(ctx, "INSERT INTO "+h.table+" (cluster, beat_us) VALUES ($1, $2) "+
		"ON CONFLICT (cluster) DO UPDATE SET beat_us = EXCLUDED.beat_us", h.cluster, at.UnixMicro())
	if err != nil {
		return fmt.Errorf("write heartbeat into %s: %w", h.table, err)
	}
	return nil
}

// create makes the table once; a failure is retried at the next beat.
func (h *Heartbeat) create(ctx context.Context) error {
	if h.created {
		return nil
	}
	var exists bool
	if err := h.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", h.table).Scan(&exists); err != nil {
		return fmt.Errorf("look up heartbeat table %s: %w", h.table, err)
	}
	if !exists {
		_, err := h.pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+h.table+
			" (cluster text PRIMARY KEY, beat_us bigint NOT NULL)")
		if err != nil {
			return fmt.Errorf("create heartbeat table %s (grant CREATE, or set monitor.heartbeat.dsn or disabled): %w", h.table, err)
		}
	}
	h.created = true
	return nil
}

// Close implements monitor.Heartbeater.
func (h *Heartbeat) Close() { h.pool.Close() }
