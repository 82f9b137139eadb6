package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/drkit/drkit/binlog"
	"github.com/drkit/drkit/storage"
)

// maxQueued bounds the WAL bytes waiting for one region. When a region is slow or
// down its queue fills, and then the region falls behind alone: the stream
// stops queueing for it and it catches up apart (lag.go). Only when no region
// keeps up does the stream wait, and the server keeps the WAL in its slot.
const maxQueued = 256 << 20

// weight is what a job takes of its region's queue: its size, at most the
// whole queue. A segment larger than the queue (initdb --wal-segsize 512 or
// 1024) then waits for an empty queue instead of for space that can never
// exist, which stopped the shipper for good while the slot filled the disk.
func (t *Target) weight(j job) int64 { return min(int64(len(j.data)), t.queueBytes()) }

// Target is one region the shipper writes to.
type Target struct {
	Catalog  *Catalog
	Required bool // its durable position gates the acknowledgement
	// Sync: the cluster runs in zero-RPO mode and its commits wait for this
	// region (sync.regions); its durable position gates the acknowledgement
	// too, and advancing it wakes the stream to report at once.
	Sync bool
	// QueueBytes bounds the WAL waiting for the region (default maxQueued).
	// A region whose queue is full falls behind alone (see lag.go).
	QueueBytes int64

	log *slog.Logger
	// noFsync: remote_write mode; a sync region's partial chunks are not
	// fsynced (see binlog.SyncRemoteWrite). wake, if set, is called when
	// the durable position advances.
	noFsync bool
	wake    func()
	// pace: in zero-RPO mode, a region that gates nothing is written at
	// most once per pace (the flush interval, as without sync), what
	// arrived meanwhile in one chunk; without it every commit group cost
	// it a write beside the sync region's, on the same CPU and disks.
	pace time.Duration
	// jobs and space belong to the current session; a previous session's
	// worker keeps its own (a late Release on a new semaphore would panic).
	jobs  chan job
	space *semaphore.Weighted

	mu      sync.Mutex
	started bool
	durable LSN // end of the WAL this region holds without a gap
	// durableTLI is the timeline durable was written on: an LSN means
	// nothing without it after a failover.
	durableTLI uint32
	at         time.Time // when durable last advanced
	lastErr    error
	// missing is the WAL handed to the region that it does not hold yet:
	// where each handed piece ends and when it was handed, oldest first
	// (empty when it holds everything handed to it, up to queuedEnd).
	missing   []handed
	queuedEnd LSN
	// lagging: the region fell behind the stream, which no longer queues
	// for it; catchNext is where the WAL queued for it (by the stream, then
	// by its catch-up) ends.
	lagging   bool
	catchNext LSN
	// resumedAt is what the region held when the session began (set
	// before the session's first job, read by the stream only).
	resumedAt LSN
	// leftovers are sealed segments the region holds only as chunks, found
	// when the session began: an earlier one ended before compacting them.
	leftovers []Segment
	// slowAtEnd: the region was lagging, or had missed WAL for over
	// slowAtReconnect, when the last session failed (resumeFrom).
	slowAtEnd bool
}

func (t *Target) queueBytes() int64 {
	if t.QueueBytes > 0 {
		return t.QueueBytes
	}
	return maxQueued
}

// Exposure is the age of the oldest WAL drd received that the region lacks:
// what a disaster right now would lose in this region, in time.
func (t *Target) Exposure(now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.missing) == 0 {
		return 0
	}
	return now.Sub(t.missing[0].at)
}

// handed is WAL handed to a region, up to end, at a time.
type handed struct {
	end LSN
	at  time.Time
}

// maxMissing bounds Target.missing: a region down for hours is handed a
// chunk per flush. Past it the newest entry grows instead, which keeps the
// older time: the exposure is never understated.
const maxMissing = 4096

// job is one thing to write: a complete segment, a chunk of the open one, a
// timeline history file, or (first of every session) the check that the region
// holds this database system's WAL.
type job struct {
	seg      Segment
	segName  string
	from, to uint64 // byte range within the segment; a whole segment is 0..size
	data     []byte
	whole    bool
	history  bool
	info     *ClusterInfo
	end      LSN // durable position once written
	// compact: a whole segment the region holds as chunks already, written
	// beside the stream (Target.holds); nil data means read its chunks.
	compact bool
}

func (t *Target) region() string { return t.Catalog.Pipeline.Region }

// partial reports whether j is a byte range of the open segment.
func (j job) partial() bool { return j.info == nil && !j.history && !j.whole }

// Durable returns the region's durable WAL end and when it last advanced.
func (t *Target) Durable() (LSN, time.Time, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.durable, t.at, t.lastErr
}

func (t *Target) setDurable(l LSN, tli uint32, err error) {
	t.mu.Lock()
	advanced := err == nil && l > t.durable
	if advanced {
		t.durable, t.durableTLI, t.at = l, tli, time.Now()
	}
	if err == nil {
		t.setHeld()
	}
	t.lastErr = err
	wake := t.wake
	t.mu.Unlock()
	if advanced && wake != nil {
		wake()
	}
}

// setHeld drops from missing what the region now holds; t.mu is held.
// Exposure is the age of the oldest WAL the region lacks, not how long it
// has lacked any: a region always one write behind a steady stream was
// reported ever more exposed (TestStoreOutage, 4 s).
func (t *Target) setHeld() {
	n := 0
	for n < len(t.missing) && t.missing[n].end <= t.durable {
		n++
	}
	t.missing = t.missing[n:]
}

// endSession records, when a session fails, whether the region was slow:
// the next session does not ask it where its WAL ends (resumeFrom).
func (t *Target) endSession(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.slowAtEnd = t.lagging || (len(t.missing) > 0 && now.Sub(t.missing[0].at) > slowAtReconnect)
}

// wasSlow reports what endSession recorded.
func (t *Target) wasSlow() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.slowAtEnd
}

// setSession sets what a session decides about the region, under t.mu: an
// earlier session's worker may still be writing.
func (t *Target) setSession(noFsync bool, wake func(), pace time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.noFsync, t.wake, t.pace = noFsync, wake, pace
}

// busy reports whether the region has been handed WAL it does not hold yet
// and keeps up with the stream (a lagging region catches up apart).
func (t *Target) busy() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.lagging && t.durable < t.queuedEnd
}

// start begins a worker writing jobs in order; it stops when jobs is closed.
// durable is the region's end on this session's lineage, rebuilt from its
// store (resumeFrom): it replaces what an earlier session knew, which after a
// failover is an LSN of another timeline, and would confirm the new
// primary's slot past what the region holds.
func (t *Target) start(ctx context.Context, log *slog.Logger, durable LSN, tli uint32) *sync.WaitGroup {
	t.log = log.With("region", t.region())
	t.mu.Lock()
	pace := t.pace
	t.mu.Unlock()
	depth := 1024
	if pace > 0 {
		depth = 16384 // a pace's worth of commit groups
	}
	jobs, space := make(chan job, depth), semaphore.NewWeighted(t.queueBytes())
	t.jobs, t.space = jobs, space
	t.mu.Lock()
	if tli != t.durableTLI {
		t.missing = nil // positions of another timeline
	}
	t.durable, t.durableTLI = durable, tli
	if t.at.IsZero() {
		t.at = time.Now()
	}
	// What the region lacked when the last session ended it still lacks,
	// since then: its exposure does not restart at a reconnect.
	t.setHeld()
	t.queuedEnd, t.started, t.slowAtEnd = t.durable, true, false
	t.lagging, t.catchNext, t.resumedAt = false, t.durable, t.durable
	t.mu.Unlock()
	var wg sync.WaitGroup
	compact := make(chan job, 1)
	wg.Go(func() {
		defer close(compact)
		var next *job
		for {
			j, ok := takeNext(jobs, next)
			if !ok {
				return
			}
			next = nil
			if j.compact || (j.whole && t.holds(j.end)) {
				j.compact = true
				compact <- j // waits only while two compactions are behind
				continue
			}
			began := time.Now()
			j, weight, after := t.coalesce(j, jobs)
			t.write(ctx, j)
			space.Release(weight)
			next = after
			if pace > 0 && next == nil {
				binlog.Sleep(ctx, pace-time.Since(began)) // what arrives meanwhile goes in one chunk
			}
		}
	})
	wg.Go(func() {
		for j := range compact {
			t.write(ctx, j)
			space.Release(t.weight(j))
		}
	})
	return &wg
}

// holds reports whether the region holds WAL up to end already. A sealed
// segment whose every byte the region holds as partial chunks is then only
// compacted into one object (fewer objects to list and read at restore): the
// worker leaves that write, a whole segment's upload, to a second goroutine
// and goes on with the open segment's chunks. Written in line, it held them
// back for the upload's length at every seal (seconds for 16 MiB to a store
// across a WAN or sharing a loaded CPU), and with them the region's exposure
// and, in zero-RPO mode, the commits waiting for it.
func (t *Target) holds(end LSN) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.durable >= end
}

// takeNext returns the job a coalesce left over, else the queue's next one.
func takeNext(jobs <-chan job, next *job) (job, bool) {
	if next != nil {
		return *next, true
	}
	j, ok := <-jobs
	return j, ok
}

// maxCoalesce bounds the chunk that coalesce builds.
const maxCoalesce = 16 << 20

// coalesce merges into j the chunks of its segment queued right behind it
// that continue it, so that a region slower than the stream writes what piled
// up while its last write was in flight as one object, not one per flush. A
// region that does not gate the acknowledgement, beside a sync region that
// is handed WAL at every group commit, would otherwise cost a write per
// commit group: on an object store sharing the CPU, the cost that bounds the
// commit rate. It returns the job to write, the queue weight it frees once
// written, and the job it took that does not continue j (nil if none).
func (t *Target) coalesce(j job, jobs <-chan job) (job, int64, *job) {
	weight := t.weight(j)
	if !j.partial() {
		return j, weight, nil
	}
	merged := false
	for len(j.data) < maxCoalesce {
		var n job
		select {
		case next, ok := <-jobs:
			if !ok {
				return j, weight, nil // the session ended: the loop sees it next
			}
			n = next
		default:
			return j, weight, nil
		}
		if !n.partial() || n.segName != j.segName || n.from != j.to {
			return j, weight, &n
		}
		if !merged {
			// j.data is the session's buffer: append to a copy.
			j.data, merged = append(make([]byte, 0, len(j.data)+len(n.data)), j.data...), true
		}
		j.data = append(j.data, n.data...)
		j.to, j.end = n.to, n.end
		weight += t.weight(n)
	}
	return j, weight, nil
}

// isStarted reports whether a session has started writing to the region.
func (t *Target) isStarted() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.started
}

// enqueue hands j to the worker, waiting while the region's queue is full.
func (t *Target) enqueue(ctx context.Context, j job) error {
	if err := t.space.Acquire(ctx, t.weight(j)); err != nil {
		return err
	}
	t.mu.Lock()
	t.queued(j)
	t.mu.Unlock()
	t.jobs <- j
	return nil
}

// tryEnqueue hands j to the worker if the region's queue has room for it.
func (t *Target) tryEnqueue(j job) bool {
	if !t.space.TryAcquire(t.weight(j)) {
		return false
	}
	// Under t.mu, so that the worker records j written only after it is
	// recorded queued.
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case t.jobs <- j:
		t.queued(j)
		return true
	default: // a thousand small chunks wait: full too
		t.space.Release(t.weight(j))
		return false
	}
}

// queued records that WAL up to j.end is on its way to the region; t.mu is held.
func (t *Target) queued(j job) {
	t.missed(j.end)
	t.catchNext = max(t.catchNext, j.end)
}

// missed records that the region lacks WAL up to end, queued or not; t.mu is
// held. Its exposure runs until it holds end.
func (t *Target) missed(end LSN) {
	switch last := len(t.missing) - 1; {
	case end <= t.durable || (last >= 0 && end <= t.missing[last].end):
		// Held, or handed before: the older time stands.
	case last+1 >= maxMissing:
		t.missing[last].end = end
	default:
		t.missing = append(t.missing, handed{end: end, at: time.Now()})
	}
	t.queuedEnd = max(t.queuedEnd, end)
}

// write stores j, retrying until it succeeds or ctx ends: a job is never
// skipped, so a region's WAL has no gaps. Only a compaction gives up (after
// maxCompactAttempts): the region holds its WAL already.
func (t *Target) write(ctx context.Context, j job) {
	delay, attempt := time.Second, 0
	for {
		var err error
		switch {
		case j.info != nil:
			err = t.Catalog.EnsureInfo(ctx, *j.info)
		case j.history:
			err = t.Catalog.PutHistory(ctx, j.segName, j.data)
		case j.whole:
			err = t.putWhole(ctx, j)
		default:
			pctx := ctx
			t.mu.Lock()
			if t.noFsync {
				pctx = storage.WithoutFsync(ctx)
			}
			t.mu.Unlock()
			err = t.Catalog.PutPartial(pctx, j.segName, j.from, j.to, j.data)
		}
		if j.info != nil || j.history || j.compact {
			// Records the error, moves nothing: a compaction that an
			// ended session did not stop in time must not set a position
			// of its timeline over the next session's.
			t.setDurable(0, 0, err)
		} else {
			t.setDurable(j.end, j.seg.TLI, err)
		}
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt++; j.compact && attempt >= maxCompactAttempts {
			// The region holds the segment as chunks, which restores read:
			// a compaction that keeps failing must not stall the ones after it.
			t.log.Warn("a segment stays stored as chunks: compacting it failed", "segment", j.segName, "err", err, "attempts", attempt)
			return
		}
		t.log.Warn("WAL write failed; retrying", "segment", j.segName, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// maxLeftovers bounds the leftover compactions a session queues for a
// region; the next session finds the rest.
const maxLeftovers = 16

// compactLeftovers queues the region's leftover compactions, which read the
// segment from its chunks.
func (t *Target) compactLeftovers(ctx context.Context, segSize uint64) error {
	t.mu.Lock()
	segs := t.leftovers
	t.leftovers = nil
	t.mu.Unlock()
	for _, seg := range segs {
		j := job{seg: seg, segName: seg.Name(segSize), to: segSize, whole: true, compact: true, end: seg.Start(segSize) + LSN(segSize)}
		if err := t.enqueue(ctx, j); err != nil {
			return err
		}
	}
	return nil
}

// maxCompactAttempts is how often a compaction is tried before the segment is
// left as chunks.
const maxCompactAttempts = 3

// putWhole stores segment j whole, read from its chunks in the region if j
// carries no bytes (a compaction left over by an earlier session), then
// deletes its chunks.
func (t *Target) putWhole(ctx context.Context, j job) error {
	data := j.data
	if data == nil {
		var err error
		if data, err = t.Catalog.ReadSegment(ctx, j.segName, j.to); err != nil {
			return err
		}
	}
	if err := t.Catalog.PutSegment(ctx, j.segName, data); err != nil {
		return err
	}
	return t.Catalog.DeletePartials(ctx, j.segName)
}

// DeletePartials removes the partial chunks of a segment now stored whole.
func (c *Catalog) DeletePartials(ctx context.Context, segName string) error {
	prefix := c.key("wal", segName+".partial") + "/"
	var keys []string
	for info, err := range c.store().List(ctx, prefix) {
		if err != nil {
			return fmt.Errorf("list partial chunks of %s: %w", segName, err)
		}
		keys = append(keys, info.Key)
	}
	return c.store().Delete(ctx, keys...)
}
