package mysql

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Target is one region the shipper writes to. Its worker writes batches in
// order; a failed write is retried until it succeeds, because a later chunk
// without the earlier one would be a gap.
type Target struct {
	Catalog *Catalog
	// Sync: the cluster runs in zero-RPO mode and its commits wait for this
	// region (sync.regions). Its chunks are fsynced in every mode: unlike
	// PostgreSQL's partial chunks, which the sealed segment replaces, a
	// binlog chunk is the region's only copy of its transactions, and
	// remote_write without fsync would leave holes after a crash of a
	// file:// region's host.
	Sync bool

	log *slog.Logger

	mu      sync.Mutex
	ready   bool
	pos     Pos // the GTID position the region holds without a gap
	next    uint64
	at      time.Time // when pos last advanced
	lastErr error
	// handedAt is when each batch on its way to the region was handed to
	// it, oldest first; lagSince, when a lagging region first missed a
	// batch the stream skipped (zero when it is not lagging). Its exposure
	// is the age of the oldest of them.
	handedAt []time.Time
	lagSince time.Time
	queued   int
	// lagging: the region fell behind the stream, which no longer queues for
	// it; caught is where what was queued for it ends (lag.go).
	lagging bool
	caught  Pos
	// skipped is the end of the newest batch the stream skipped for the
	// lagging region: once caught covers it, the region holds all.
	skipped Pos
}

func (t *Target) region() string { return t.Catalog.Pipeline.Region }

// Position returns the region's durable GTID position and when it advanced.
func (t *Target) Position() (Pos, time.Time, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos.Clone(), t.at, t.lastErr
}

// Exposure is the age of the oldest transaction drd received that the region
// lacks.
func (t *Target) Exposure(now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	since := t.lagSince
	if len(t.handedAt) > 0 && (since.IsZero() || t.handedAt[0].Before(since)) {
		since = t.handedAt[0]
	}
	if since.IsZero() {
		return 0
	}
	return now.Sub(since)
}

// load reads the region's last chunk: where it stands and the next number.
func (t *Target) load(ctx context.Context, info ClusterInfo) error {
	if err := t.Catalog.EnsureInfo(ctx, info); err != nil {
		return err
	}
	refs, err := t.Catalog.List(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ready, t.pos, t.next = true, nil, 0
	if len(refs) == 0 {
		return nil
	}
	last := refs[len(refs)-1]
	h, err := t.Catalog.Header(ctx, last)
	if err != nil {
		return fmt.Errorf("region %s: read the last binlog chunk: %w", t.region(), err)
	}
	if t.pos, err = ParsePos(h.End); err != nil {
		return fmt.Errorf("region %s: chunk %d: %w", t.region(), last.Seq, err)
	}
	t.next, t.at = last.Seq+1, time.Unix(h.LastTime, 0)
	return nil
}

// forget drops what the target knows of its region, which load reads again.
func (t *Target) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ready, t.pos, t.next, t.queued = false, nil, 0, 0
	t.handedAt, t.lagSince, t.lagging, t.caught, t.skipped = nil, time.Time{}, false, nil, nil
}

// enqueued returns how many batches are on their way to the region.
func (t *Target) enqueued() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.queued
}

// write stores the transactions of b the region lacks as its next chunk,
// retrying until it succeeds or ctx ends. A region that stands where b starts
// (all of them, but after a restart with regions at different positions)
// stores b's shared encoding.
func (t *Target) write(ctx context.Context, b *batch) error {
	t.mu.Lock()
	start := t.pos
	t.mu.Unlock()
	var e *encodedChunk
	var err error
	if start == nil || (start.Covers(b.start) && b.start.Covers(start)) {
		e, err = b.encoded()
	} else {
		txns := b.txns[:0:0]
		for _, tx := range b.txns {
			if !start.Contains(tx.GTID) {
				txns = append(txns, tx)
			}
		}
		if len(txns) > 0 {
			e, err = encode(start, txns, b.serverVersion)
		}
	}
	if err != nil {
		return err
	}
	if e != nil {
		if err := t.put(ctx, e); err != nil {
			return err
		}
	}
	if t.Sync {
		b.syncStored()
	}
	t.wrote()
	return nil
}

// wrote records that the oldest batch handed to the region is written.
func (t *Target) wrote() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.queued--
	if len(t.handedAt) > 0 {
		t.handedAt = t.handedAt[1:] // the worker writes in the order handed
	}
}

func (t *Target) put(ctx context.Context, e *encodedChunk) error {
	delay := time.Second
	for {
		t.mu.Lock()
		seq := t.next
		t.mu.Unlock()
		err := t.Catalog.Put(ctx, seq, e)
		t.mu.Lock()
		t.lastErr = err
		if err == nil {
			t.pos, t.next, t.at = e.end.Clone(), seq+1, time.Now()
		}
		t.mu.Unlock()
		if err == nil {
			return nil
		}
		t.log.Error("binlog upload failed; retrying", "region", t.region(), "chunk", seq, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}
