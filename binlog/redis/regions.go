package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drkit/drkit/binlog"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// A region that cannot keep up falls behind alone. Each region has its own
// queue and writer; a chunk is handed to every queue. When a region's queue
// is full (its store is down or slow) and another region keeps up, the
// stream stops queueing for it instead of waiting, so the others keep their
// exposure. The region is then "lagging": once its queue has drained, a
// catch-up copies what it lacks from a region that keeps up (the primary's
// backlog is usually far too small to read the stream again), and the
// stream takes it back at the first chunk that starts where it stands. A
// region drd cannot read at start lags from the start. When no other region
// keeps up, the stream waits for the last one: the primary buffers, and
// nothing is acknowledged that no region holds.

const (
	// queueDepth is how many chunks may wait for a slow region before it
	// falls behind (at most queueDepth × maxChunk bytes held for it).
	queueDepth = 16
	// loadTimeout bounds reading where a region stands at start: a dead
	// store is retried by the SDK for minutes while the others wait.
	loadTimeout = 10 * time.Second
	// catchUpRetry is how often a catch-up looks again.
	catchUpRetry = 500 * time.Millisecond
)

// chunk is a cut of the stream on its way to the regions.
type chunk struct {
	h     ChunkHeader
	plain []byte
	since time.Time // when its first command arrived
}

// target is one ship_to region's side of the stream. Its fields but r, q
// and required are guarded by Shipper.mu.
type target struct {
	r        *storage.Region
	required bool
	q        chan *chunk

	// end is the newest stream position it holds (End -1: unknown).
	end     Position
	at      time.Time // its last durable write
	ok      bool      // reported: the shipper has streamed
	healthy bool      // its last write succeeded
	lagging bool      // it fell behind; its catch-up runs
	since   []time.Time
	missed  time.Time // the first command it lacks while lagging
}

// holds reports whether t's end is where c starts.
func (t *target) holdsUpTo(c *chunk) bool {
	return t.end.End == c.h.Start && (t.end.ReplID == c.h.ReplID || c.h.Prev != "" && t.end.ReplID == c.h.Prev)
}

// oldest is when the oldest command t lacks arrived (zero: none); t's
// shipper's mu is held.
func (t *target) oldest() time.Time {
	var o time.Time
	if len(t.since) > 0 {
		o = t.since[0]
	}
	if !t.missed.IsZero() && (o.IsZero() || t.missed.Before(o)) {
		o = t.missed
	}
	return o
}

// hand gives c to every region's queue (see the comment at the top).
func (s *Shipper) hand(ctx context.Context, c *chunk) error {
	for _, t := range s.targets {
		s.mu.Lock()
		switch {
		case t.lagging:
			if t.holdsUpTo(c) && len(t.since) == 0 && s.offer(t, c) {
				t.lagging, t.missed = false, time.Time{}
				s.Log.Info("region caught up; it takes the stream again", "cluster", s.Cluster, "region", t.r.Name, "offset", c.h.Start)
			} else if t.missed.IsZero() {
				t.missed = c.since
			}
			s.mu.Unlock()
			continue
		case s.offer(t, c):
			s.mu.Unlock()
			continue
		case s.othersKeepUp(t):
			s.fallBehind(ctx, t, "its queue is full")
			t.missed = c.since
			s.mu.Unlock()
			continue
		}
		s.mu.Unlock()
		// The last region keeping up: the stream waits for it.
		select {
		case t.q <- c:
			s.mu.Lock()
			t.since = append(t.since, c.since)
			s.mu.Unlock()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// offer queues c for t if its queue has room; s.mu is held.
func (s *Shipper) offer(t *target, c *chunk) bool {
	select {
	case t.q <- c:
		t.since = append(t.since, c.since)
		return true
	default:
		return false
	}
}

// othersKeepUp reports whether a region other than t takes the stream;
// s.mu is held.
func (s *Shipper) othersKeepUp(t *target) bool {
	return s.keepingUp(t) != nil
}

// keepingUp returns a region other than t that takes the stream, if any;
// s.mu is held.
func (s *Shipper) keepingUp(t *target) *target {
	for _, o := range s.targets {
		if o != t && !o.lagging {
			return o
		}
	}
	return nil
}

// fallBehind makes t lagging and starts its catch-up, unless no other
// region keeps up: the stream then waits for t (a chunk no region takes
// would be lost to a resume from what was handed); s.mu is held.
func (s *Shipper) fallBehind(ctx context.Context, t *target, why string) {
	if t.lagging || !s.othersKeepUp(t) {
		return
	}
	t.lagging = true
	s.Log.Warn("region cannot keep up ("+why+"); it falls behind alone and catches up from another region", "cluster", s.Cluster, "region", t.r.Name)
	s.catchWG.Go(func() { s.catchUp(ctx, t) })
}

// write stores t's queued chunks in order, retrying each until it is
// stored or ctx ends.
func (s *Shipper) write(ctx context.Context, t *target) {
	cat := &Catalog{Pipeline: t.r.Pipeline, Cluster: s.Cluster}
	for c := range t.q {
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			err := cat.Put(ctx, c.h, c.plain)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			if t.healthy {
				s.Log.Warn("region: writing a chunk failed; retrying", "cluster", s.Cluster, "region", t.r.Name, "err", err)
			}
			t.healthy = false
			s.mu.Unlock()
			binlog.Sleep(ctx, delay)
		}
		s.mu.Lock()
		t.since = t.since[1:]
		t.healthy, t.at = true, time.Now()
		if c.h.ReplID == t.end.ReplID && c.h.End > t.end.End || t.holdsUpTo(c) {
			t.end = Position{ReplID: c.h.ReplID, End: c.h.End, LastMS: c.h.LastMS}
		}
		s.mu.Unlock()
	}
}

// catchUp brings lagging t up to the stream: once its queue has drained,
// it copies what t lacks from a region that keeps up, until t holds what
// was handed to the others (then it rejoins here, or at the next chunk in
// hand).
func (s *Shipper) catchUp(ctx context.Context, t *target) {
	var lastErr string
	for {
		if !sleep(ctx, catchUpRetry) {
			return
		}
		s.mu.Lock()
		if !t.lagging {
			s.mu.Unlock()
			return
		}
		src, queued := s.keepingUp(t), len(t.since)
		var srcEnd Position
		if src != nil {
			srcEnd = src.end
		}
		s.mu.Unlock()
		if queued > 0 || src == nil || srcEnd.End < 0 {
			continue
		}
		n, err := copyStream(ctx, src.r, t.r, s.Cluster)
		if err != nil {
			if ctx.Err() == nil && err.Error() != lastErr {
				s.Log.Warn("region's catch-up failed; retrying", "cluster", s.Cluster, "region", t.r.Name, "from", src.r.Name, "err", err)
			}
			lastErr = err.Error()
			continue
		}
		lastErr = ""
		s.mu.Lock()
		if !t.lagging {
			// The stream took t back meanwhile; its writer moves t.end on.
			s.mu.Unlock()
			return
		}
		t.healthy, t.at = true, time.Now()
		if n > 0 || t.end != srcEnd {
			s.Log.Info("region caught up on objects copied from another region", "cluster", s.Cluster, "region", t.r.Name, "from", src.r.Name, "objects", n, "offset", srcEnd.End)
		}
		t.end = srcEnd
		if t.end.ReplID == s.handed.ReplID && t.end.End == s.handed.End && len(t.since) == 0 {
			t.lagging, t.missed = false, time.Time{}
			s.Log.Info("region caught up; it takes the stream again", "cluster", s.Cluster, "region", t.r.Name, "offset", t.end.End)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// drain waits until every region keeping up has written its queue, at most
// d or until ctx ends; a region that has not by then falls behind (its
// catch-up runs under catchCtx). A new session starts from what was
// handed, and a full resync must not race older chunks.
func (s *Shipper) drain(ctx, catchCtx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		s.mu.Lock()
		waiting := 0
		for _, t := range s.targets {
			if !t.lagging && len(t.since) > 0 {
				if time.Now().After(deadline) {
					s.fallBehind(catchCtx, t, "its queue did not drain")
					continue
				}
				waiting++
			}
		}
		s.mu.Unlock()
		if waiting == 0 || !sleep(ctx, 50*time.Millisecond) {
			return
		}
	}
}

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// copyStream copies to dst what src holds of the cluster that dst lacks:
// base backups (by id) and stream chunks (by history and range), read and
// checked through src's pipeline and written through dst's (the regions
// may compress or encrypt differently). It returns how many objects it
// copied.
func copyStream(ctx context.Context, src, dst *storage.Region, cluster string) (int, error) {
	if err := ensureInfo(ctx, []*storage.Region{dst}, cluster); err != nil {
		return 0, err
	}
	n, err := copyBases(ctx, src, dst, cluster)
	if err != nil {
		return n, err
	}
	from, to := &Catalog{Pipeline: src.Pipeline, Cluster: cluster}, &Catalog{Pipeline: dst.Pipeline, Cluster: cluster}
	have, err := to.List(ctx)
	if err != nil {
		return n, err
	}
	type span struct {
		replid     string
		start, end int64
	}
	held := map[span]bool{}
	for _, r := range have {
		held[span{r.ReplID, r.Start, r.End}] = true
	}
	refs, err := from.List(ctx)
	if err != nil {
		return n, err
	}
	for _, ref := range refs {
		if held[span{ref.ReplID, ref.Start, ref.End}] {
			continue
		}
		h, cmds, err := from.ReadAll(ctx, ref)
		if err != nil {
			return n, err
		}
		if err := to.Put(ctx, h, encodeChunk(h, cmds)); err != nil {
			return n, fmt.Errorf("region %s: %w", dst.Name, err)
		}
		n++
	}
	return n, nil
}

// copyBases copies the complete base backups src holds and dst does not.
func copyBases(ctx context.Context, src, dst *storage.Region, cluster string) (int, error) {
	want, _, err := ListBases(ctx, src.Pipeline, cluster)
	if err != nil {
		return 0, err
	}
	have, _, err := ListBases(ctx, dst.Pipeline, cluster)
	if err != nil {
		return 0, err
	}
	held := map[string]bool{}
	for _, b := range have {
		held[b.ID] = true
	}
	n := 0
	for _, b := range want {
		if held[b.ID] {
			continue
		}
		if err := copyBase(ctx, src, dst, b); err != nil {
			return n, fmt.Errorf("base backup %s: %w", b.ID, err)
		}
		n++
	}
	return n, nil
}

// copyBase copies one base backup's RDB, then its manifest.
func copyBase(ctx context.Context, src, dst *storage.Region, b Base) error {
	rc, err := src.Pipeline.Open(ctx, b.RDB)
	if err != nil {
		return fmt.Errorf("region %s: %w", src.Name, err)
	}
	obj, err := dst.Pipeline.Put(ctx, b.RDB.Key, rc)
	if cerr := rc.Close(); err == nil && cerr != nil {
		return fmt.Errorf("region %s: %s: %w", src.Name, b.RDB.Key, cerr)
	}
	if err != nil {
		return fmt.Errorf("region %s: %w", dst.Name, err)
	}
	if obj.SHA256 != b.RDB.SHA256 {
		return errors.New("the copied RDB's checksum differs from its manifest's")
	}
	b.RDB, b.StoredSize = obj, obj.Size
	return snapshots.WriteManifest(ctx, dst.Store, b.Cluster, b.ID, b)
}
