package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Heartbeat writes the cluster's heartbeat row on the primary.
type Heartbeat struct {
	cluster, table string
	db             *sql.DB
	// created is set once the table exists; Beat is called from one goroutine.
	created bool
}

// NewHeartbeat returns a writer into table ([database.]table) over dsn.
func NewHeartbeat(cluster, table, dsn string) (*Heartbeat, error) {
	db, err := open(dsn)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	return &Heartbeat{cluster: cluster, table: table, db: db}, nil
}

// Beat implements monitor.Heartbeater. The first beat creates the database
// and table.
func (h *Heartbeat) Beat(ctx context.Context, at time.Time) error {
	if !h.created {
		if err := h.create(ctx); err != nil {
			return err
		}
		h.created = true
	}
	_, err := h.db.ExecContext(ctx, "INSERT INTO "+h.table+" (cluster, beat_us) VALUES (?, ?) "+
		"ON DUPLICATE KEY UPDATE beat_us = VALUES(beat_us)", h.cluster, at.UnixMicro())
	if err != nil {
		return fmt.Errorf("write heartbeat into %s: %w", h.table, err)
	}
	return nil
}

func (h *Heartbeat) create(ctx context.Context) error {
	stmts := []string{"CREATE TABLE IF NOT EXISTS " + h.table +
		" (cluster VARCHAR(64) NOT NULL PRIMARY KEY, beat_us BIGINT NOT NULL) ENGINE=InnoDB"}
	if schema, _, ok := strings.Cut(h.table, "."); ok {
		stmts = append([]string{"CREATE DATABASE IF NOT EXISTS " + schema}, stmts...)
	}
	for _, s := range stmts {
		if _, err := h.db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("create heartbeat table %s (grant CREATE, or set monitor.heartbeat.dsn or disabled): %w", h.table, err)
		}
	}
	return nil
}

// Close implements monitor.Heartbeater.
func (h *Heartbeat) Close() { _ = h.db.Close() }
