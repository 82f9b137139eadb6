package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Heartbeat writes the cluster's heartbeat key on the primary.
type Heartbeat struct {
	key string
	c   *goredis.Client
}

// NewHeartbeat returns a writer of key over the redis:// URL dsn; it
// connects lazily.
func NewHeartbeat(key, dsn string) (*Heartbeat, error) {
	c, err := open(dsn)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	return &Heartbeat{key: key, c: c}, nil
}

// Beat implements monitor.Heartbeater.
func (h *Heartbeat) Beat(ctx context.Context, at time.Time) error {
	if err := h.c.Set(ctx, h.key, at.UnixMicro(), 0).Err(); err != nil {
		return fmt.Errorf("write heartbeat key %s: %w", h.key, err)
	}
	return nil
}

// Close implements monitor.Heartbeater.
func (h *Heartbeat) Close() { _ = h.c.Close() }
