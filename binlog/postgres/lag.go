package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/drkit/drkit/binlog"
)

// A region that cannot keep up falls behind alone. When its queue is full
// (its store is down or slow) and another region keeps up, the stream stops
// queueing for it instead of waiting, so the others keep their exposure. The
// region is then "lagging": a catch-up goroutine copies the segments the
// stream has sealed since, from a region that holds them, into its queue,
// and at the next flush or seal after the copy reaches the open segment the
// stream takes the region back, with the open segment's bytes it missed
// (they are still in the session's buffer).
//
// Nothing is lost meanwhile: a required region's durable position still
// gates the slot, so the server keeps its WAL; an optional region is copied
// from the regions that hold it. Only when every region is behind does the
// stream wait, as before.

// catchUpRetry is how long the catch-up waits when the segment it needs is
// not sealed yet or no region holds it yet.
const catchUpRetry = 250 * time.Millisecond

// catchUp is the session's catch-up state.
type catchUp struct {
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu   sync.Mutex
	open Segment // the segment the stream is filling
}

// openSeg returns the segment the stream is filling.
func (c *catchUp) openSeg() Segment {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

func (c *catchUp) setOpen(s Segment) {
	c.mu.Lock()
	c.open = s
	c.mu.Unlock()
}

// halt stops every catch-up and waits for them: the queues they write to
// are closed next.
func (c *catchUp) halt() {
	c.stop()
	c.wg.Wait()
}

// hand gives j, WAL of the open segment or the whole sealed one, to every
// region: queued where there is room, else the region falls behind, unless it
// is the last region keeping up, for which the stream waits.
func (ss *session) hand(ctx context.Context, j job) error {
	for _, t := range ss.s.Targets {
		if j.end <= t.resumedAt {
			// The region held this before the session began: the stream
			// starts at a segment boundary, below where most regions end,
			// and writing it again after a reconnect only delayed the
			// region's new WAL.
			continue
		}
		if t.isLagging() {
			ss.rejoin(t, j)
			continue
		}
		if t.tryEnqueue(j) {
			continue
		}
		if !ss.othersKeepUp(t) {
			if err := t.enqueue(ctx, j); err != nil {
				return err
			}
			continue
		}
		if j.whole {
			// The segment's chunks, its tail last, may all be queued: the
			// catch-up starts at the segment, so that the region still
			// gets it whole (it would stay as chunks).
			t.rewindCatchUp(j.seg.Start(ss.segSize))
		}
		ss.fallBehind(t, j.end)
	}
	return nil
}

// rewindCatchUp makes a catch-up begin no later than at.
func (t *Target) rewindCatchUp(at LSN) {
	t.mu.Lock()
	t.catchNext = min(t.catchNext, at)
	t.mu.Unlock()
}

func (t *Target) isLagging() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lagging
}

// othersKeepUp reports whether a region other than t takes the stream's WAL.
func (ss *session) othersKeepUp(t *Target) bool {
	for _, o := range ss.s.Targets {
		if o != t && !o.isLagging() {
			return true
		}
	}
	return false
}

// fallBehind stops queueing for t, which lacks WAL up to end, and starts its
// catch-up.
func (ss *session) fallBehind(t *Target, end LSN) {
	t.mu.Lock()
	t.lagging = true
	t.missed(end)
	from := t.catchNext
	t.mu.Unlock()
	ss.s.Log.Warn("region cannot keep up; it falls behind alone and catches up from the regions that hold the WAL",
		"cluster", ss.s.Cluster, "region", t.region(), "queued_up_to", from.String(), "required", t.Required)
	ss.catch.wg.Go(func() { ss.catchUp(t) })
}

// rejoin takes lagging t back into the stream with j if its catch-up has
// queued everything before j's segment (or more of it): the bytes of j's
// segment it lacks are in the session's buffer. Otherwise t misses j.
func (ss *session) rejoin(t *Target, j job) {
	segStart := j.seg.Start(ss.segSize)
	t.mu.Lock()
	next := t.catchNext
	switch {
	case j.from == j.to && next >= j.end:
		// An idle flush's empty job, and everything up to it is queued for
		// the region already.
		t.lagging = false
		t.mu.Unlock()
		ss.s.Log.Info("region caught up; it takes the stream again", "cluster", ss.s.Cluster, "region", t.region(), "at", next.String())
		return
	case next < segStart:
		t.missed(j.end)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	if from := uint64(next - segStart); !j.whole && from < j.from {
		j.from, j.data = from, ss.buf[from:j.to]
	}
	if !t.tryEnqueue(j) {
		t.mu.Lock()
		t.missed(j.end)
		t.mu.Unlock()
		return
	}
	t.mu.Lock()
	t.lagging = false
	t.mu.Unlock()
	ss.s.Log.Info("region caught up; it takes the stream again", "cluster", ss.s.Cluster, "region", t.region(), "at", next.String())
}

// catchUp queues for lagging t the segments the stream sealed after what t
// was given, each copied from a region that holds it, until the stream takes
// t back (rejoin) or the session ends.
func (ss *session) catchUp(t *Target) {
	ctx := ss.catch.ctx
	var waitingSince time.Time
	for ctx.Err() == nil {
		t.mu.Lock()
		next, lagging := t.catchNext, t.lagging
		t.mu.Unlock()
		if !lagging {
			return
		}
		no := uint64(next) / ss.segSize
		if no >= ss.catch.openSeg().No {
			binlog.Sleep(ctx, catchUpRetry) // the stream gives t the open segment
			continue
		}
		seg := Segment{TLI: TimelineOf(ss.lineage, no, ss.segSize), No: no}
		data, err := ss.fromOtherRegion(ctx, t, seg)
		if err != nil {
			if waitingSince.IsZero() {
				waitingSince = time.Now()
			}
			if time.Since(waitingSince) > time.Minute {
				ss.s.Log.Error("a lagging region cannot catch up: no region that keeps up holds the WAL it needs; it stays behind (drctl copy can fill it)",
					"cluster", ss.s.Cluster, "region", t.region(), "segment", seg.Name(ss.segSize), "err", err)
				waitingSince = time.Now()
			}
			binlog.Sleep(ctx, catchUpRetry)
			continue
		}
		waitingSince = time.Time{}
		end := seg.Start(ss.segSize) + LSN(ss.segSize)
		j := job{seg: seg, segName: seg.Name(ss.segSize), to: ss.segSize, data: data, whole: true, end: end}
		if err := t.enqueueCatchUp(ctx, j); err != nil {
			return
		}
	}
}

// enqueueCatchUp queues a segment copied for lagging t, waiting for room.
func (t *Target) enqueueCatchUp(ctx context.Context, j job) error {
	if err := t.space.Acquire(ctx, t.weight(j)); err != nil {
		return err
	}
	for {
		t.mu.Lock()
		if !t.lagging {
			t.mu.Unlock()
			t.space.Release(t.weight(j))
			return errors.New("the stream took the region back")
		}
		select {
		case t.jobs <- j:
			t.queued(j)
			t.mu.Unlock()
			return nil
		default: // a thousand small chunks wait; t.mu must not be held waiting
		}
		t.mu.Unlock()
		binlog.Sleep(ctx, catchUpRetry)
		if ctx.Err() != nil {
			t.space.Release(t.weight(j))
			return ctx.Err()
		}
	}
}

// fromOtherRegion reads seg whole from a region that keeps up and holds it.
func (ss *session) fromOtherRegion(ctx context.Context, t *Target, seg Segment) ([]byte, error) {
	end := seg.Start(ss.segSize) + LSN(ss.segSize)
	errs := []error{}
	for _, o := range ss.s.Targets {
		if o == t || o.isLagging() {
			continue
		}
		if d, _, _ := o.Durable(); d < end {
			continue // not written there yet
		}
		data, err := o.Catalog.ReadSegment(ctx, seg.Name(ss.segSize), ss.segSize)
		if err == nil {
			return data, nil
		}
		errs = append(errs, fmt.Errorf("region %s: %w", o.region(), err))
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("segment %s: no region keeping up has written it yet", seg.Name(ss.segSize))
	}
	return nil, errors.Join(errs...)
}
