package mysql

import (
	"context"
	"fmt"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/drkit/drkit/binlog"
)

// A region that cannot keep up falls behind alone. When its queue is full
// (its store is down or slow) and another region keeps up, the stream stops
// queueing for it instead of waiting, so the others keep their exposure. The
// region is then "lagging": once its queue has drained, a catch-up reads the
// binlog again from the end of what it was given, on a second dump
// connection of its own, and queues it; the stream takes the region back at
// the first batch that starts where the catch-up has reached (the region's
// writer skips transactions it already holds). A region whose store does not
// answer when drd starts begins lagging, and is read (load) by its catch-up
// once it answers.
//
// The server must still hold the binlog from where the region stands
// (binlog_expire_logs_seconds); if it no longer does, the catch-up says so
// and the region needs drctl copy from another region.

// catchUpRetry is how often a catch-up looks whether its region's queue has
// drained or its store answers.
const catchUpRetry = 200 * time.Millisecond

// catchUpID is the server_id region i's catch-up dump registers with: not
// drd's own (the server would end drd's stream for a second reader with its
// id), and distinct per region.
func (s *Shipper) catchUpID(i int) uint32 { return s.ServerID ^ 1<<31 + uint32(i) + 1 }

// offer queues b for the region if its queue has room.
func (t *Target) offer(q chan<- *batch, b *batch) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case q <- b:
		t.queuedLocked(b)
		return true
	default:
		return false
	}
}

// queuedLocked records b on its way to the region; t.mu is held.
func (t *Target) queuedLocked(b *batch) {
	at := time.Now()
	if t.lagging && !t.lagSince.IsZero() {
		// A catch-up batch (or the one the stream takes the region back
		// with): the region has missed its transactions since it began
		// lagging, not since now.
		at = t.lagSince
	}
	t.handedAt = append(t.handedAt, at)
	t.queued++
	if t.caught == nil || !t.caught.Covers(b.end) {
		t.caught = b.end.Clone()
	}
}

func (t *Target) isLagging() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lagging
}

// othersKeepUp reports whether a region other than t takes the stream.
func (s *Shipper) othersKeepUp(t *Target) bool {
	for _, o := range s.Targets {
		if o != t && !o.isLagging() {
			return true
		}
	}
	return false
}

// fallBehind stops queueing for region i from b on and starts its catch-up.
func (s *Shipper) fallBehind(ctx context.Context, i int, b *batch) {
	t := s.Targets[i]
	t.mu.Lock()
	if t.lagging {
		t.mu.Unlock()
		return // its catch-up runs
	}
	t.lagging = true
	if t.lagSince.IsZero() {
		t.lagSince = time.Now()
	}
	if t.caught == nil && b != nil {
		t.caught = b.start.Clone()
	}
	from := t.caught
	t.mu.Unlock()
	s.Log.Warn("region cannot keep up; it falls behind alone and catches up on a binlog dump of its own",
		"cluster", s.Cluster, "region", t.region(), "from", from.String())
	s.catchWG.Go(func() { s.catchUp(ctx, i) })
}

// rejoin takes lagging region i back into the stream with b if its catch-up
// has queued everything before b, or else records that the region missed b.
// It returns false if the region is not lagging (any more): b is then the
// caller's to queue.
func (s *Shipper) rejoin(i int, b *batch) bool {
	t := s.Targets[i]
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.lagging {
		return false
	}
	if t.ready && t.caught != nil && t.caught.Covers(b.start) {
		select {
		case s.queues[i] <- b:
			t.queuedLocked(b)
			t.lagging, t.lagSince = false, time.Time{} // what it missed is queued, with lagSince
			s.Log.Info("region caught up; it takes the stream again", "cluster", s.Cluster, "region", t.region(), "at", b.start.String())
			return true
		default:
		}
	}
	t.skipped = b.end.Clone()
	return true
}

// rejoinIdle takes lagging t back when its catch-up holds everything the
// stream skipped for it: on an idle server no batch comes to rejoin with.
func (s *Shipper) rejoinIdle(t *Target) bool {
	s.mu.Lock()
	streamed := s.pos.Clone() // where the next batch starts
	s.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	need := t.skipped
	if need == nil {
		// Nothing skipped yet: a batch being handed now finds the region
		// taken back (rejoin runs under t.mu) and queues it.
		need = streamed
	}
	if !t.lagging || !t.ready || t.caught == nil || need == nil || !t.caught.Covers(need) {
		return false
	}
	t.lagging, t.lagSince = false, time.Time{} // what it missed is queued, with lagSince
	s.Log.Info("region caught up; it takes the stream again", "cluster", s.Cluster, "region", t.region(), "at", t.caught.String())
	return true
}

// catchUp brings lagging region i up to the stream: it loads the region if
// drd could not read it yet, waits for its queue to drain, then reads the
// binlog from where the region stands until the stream takes it back.
func (s *Shipper) catchUp(ctx context.Context, i int) {
	t := s.Targets[i]
	var lastErr string
	complain := func(msg string, err error) {
		if err.Error() != lastErr {
			s.Log.Error(msg, "cluster", s.Cluster, "region", t.region(), "err", err)
			lastErr = err.Error()
		}
	}
	for ctx.Err() == nil && t.isLagging() {
		if err := s.loadLagging(ctx, t); err != nil {
			complain("a lagging region's store does not answer; it stays behind and is tried again", err)
			binlog.Sleep(ctx, 5*time.Second)
			continue
		}
		if !t.drained() {
			binlog.Sleep(ctx, catchUpRetry)
			continue
		}
		if err := s.catchUpOnce(ctx, i); err != nil && ctx.Err() == nil {
			complain("a lagging region's catch-up stopped (if the server no longer holds its binlog, fill it with drctl copy from another region); retrying", err)
			binlog.Sleep(ctx, 5*time.Second)
		}
	}
}

// loadLagging reads where a region drd could not read at start stands.
func (s *Shipper) loadLagging(ctx context.Context, t *Target) error {
	t.mu.Lock()
	ready := t.ready
	t.mu.Unlock()
	if ready {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	if err := t.load(lctx, s.clusterInfo()); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.caught = t.pos.Clone()
	if len(t.caught) == 0 {
		s.mu.Lock()
		t.caught = s.began.Clone() // an empty region gets what the others got
		s.mu.Unlock()
	}
	s.Log.Info("a lagging region's store answers; catching it up", "cluster", s.Cluster, "region", t.region(), "from", t.caught.String())
	return nil
}

// drained reports whether the region's writer has written all it was given.
func (t *Target) drained() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.queued == 0
}

// catchUpOnce reads the binlog from where region i stands on a dump of its
// own and queues it in batches, until the stream takes the region back, its
// queue is full again (it is still slow: wait for it to drain), or an error.
func (s *Shipper) catchUpOnce(ctx context.Context, i int) error {
	t := s.Targets[i]
	cfg, err := driver.ParseDSN(s.DSN)
	if err != nil {
		return err
	}
	t.mu.Lock()
	from := t.caught.Clone()
	t.mu.Unlock()
	d, err := openDump(ctx, cfg, s.catchUpID(i), from)
	if err != nil {
		return fmt.Errorf("binlog dump from %s: %w", from, err)
	}
	txns, done := make(chan streamed, 256), make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		read(d, &assembler{heartbeat: s.Heartbeat}, txns, done)
	}()
	defer func() {
		close(done)
		d.close()
		<-finished
	}()
	s.mu.Lock()
	version := s.version
	s.mu.Unlock()
	b := &batch{start: from, serverVersion: version}
	pos, size := from.Clone(), 0
	idle := time.NewTimer(idleFlush)
	defer idle.Stop()
	for {
		var it streamed
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
		case it = <-txns:
			if it.err != nil {
				return it.err
			}
		}
		tx := it.tx
		if tx != nil && len(b.txns) > 0 && !sameBytes(tx.FDE, b.txns[0].FDE) {
			if ok, err := s.queueCatchUp(t, i, b, pos); !ok {
				return err
			}
			b, size = &batch{start: pos.Clone(), serverVersion: version}, 0
		}
		if tx != nil {
			b.add(tx, time.Now())
			pos.Advance(tx.GTID)
			size += tx.Size
			if size < maxBatch {
				idle.Reset(idleFlush)
				continue
			}
		}
		if len(b.txns) > 0 {
			if ok, err := s.queueCatchUp(t, i, b, pos); !ok {
				return err
			}
			b, size = &batch{start: pos.Clone(), serverVersion: version}, 0
		} else if !t.isLagging() || s.rejoinIdle(t) {
			return nil
		}
		idle.Reset(idleFlush)
	}
}

// queueCatchUp queues b (ending at end) for lagging region i. It returns
// false when the catch-up should stop: the stream took the region back, or
// the queue is full again.
func (s *Shipper) queueCatchUp(t *Target, i int, b *batch, end Pos) (bool, error) {
	b.end = end.Clone()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.lagging {
		return false, nil
	}
	select {
	case s.queues[i] <- b:
		t.queuedLocked(b)
		return true, nil
	default:
		return false, nil // still slow: the catch-up waits for the queue to drain
	}
}
