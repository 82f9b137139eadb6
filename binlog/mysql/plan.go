package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

// StopAt says where a replay stops. The zero StopAt replays everything the
// region holds.
type StopAt struct {
	// Time: replay transactions committed at or before it (binlog times have
	// whole-second resolution, so commits within Time's second are included).
	Time time.Time
	// GTID: replay up to and including this transaction.
	GTID *GTID
}

func (t StopAt) String() string {
	switch {
	case t.GTID != nil:
		return "GTID " + t.GTID.String()
	case !t.Time.IsZero():
		return "time " + t.Time.UTC().Format(time.RFC3339)
	}
	return "the latest transaction"
}

// stopsBefore reports whether tx is past the target.
func (t StopAt) stopsBefore(tx *Txn) bool {
	return !t.Time.IsZero() && int64(tx.Time) > t.Time.Unix()
}

// Feed reads, in order, the transactions a region holds after position from,
// up to the target, checking continuity between chunks: a gap is an error that
// names the missing range, never a silent skip.
type Feed struct {
	Catalog *Catalog
	From    Pos
	Target  StopAt
	// StopAtGap ends the replay at a gap instead of failing (restore
	// --accept-gap, after Reach said where).
	StopAtGap bool
	// Prefetch is how many chunks are downloaded ahead (default 4).
	Prefetch int
}

// Run calls fn for each transaction in order and returns the position after
// the last one. It fails if a chunk is missing, corrupt, or the target GTID
// never appears.
func (f *Feed) Run(ctx context.Context, fn func(*Txn) error) (Pos, error) {
	if f.Target.GTID != nil && f.From.Contains(*f.Target.GTID) {
		// The start already holds the target (a snapshot taken right at it):
		// nothing to replay. Reading on would never meet the target and
		// stream every later transaction.
		return f.From.Clone(), nil
	}
	refs, err := f.Catalog.List(ctx)
	if err != nil {
		return nil, err
	}
	first, err := f.firstAfter(ctx, refs)
	if err != nil {
		return nil, err
	}
	refs = refs[first:]
	pos := f.From.Clone()
	started := false
	var prevEnd string
	done := errors.New("target reached")
	err = f.each(ctx, refs, func(ref ChunkRef, cr *chunkReader) error {
		h := cr.Header
		if started && h.Start != prevEnd {
			if f.StopAtGap {
				return done
			}
			return fmt.Errorf("region %s: binlog gap before chunk %d: it starts at %q, the chunk before ends at %q", f.Catalog.Pipeline.Region, ref.Seq, h.Start, prevEnd)
		}
		prevEnd = h.End
		end, err := ParsePos(h.End)
		if err != nil {
			return fmt.Errorf("chunk %d: %w", ref.Seq, err)
		}
		if !started && pos.Covers(end) {
			return nil // wholly before From
		}
		if !started {
			start, err := ParsePos(h.Start)
			if err != nil {
				return fmt.Errorf("chunk %d: %w", ref.Seq, err)
			}
			if !pos.Covers(start) {
				return fmt.Errorf("region %s: binlog gap: the restore needs the transactions after %s, the region's binlog resumes at %s (chunk %d)", f.Catalog.Pipeline.Region, pos, start, ref.Seq)
			}
			started = true
		}
		return replayChunk(cr, func(tx *Txn) error {
			if pos.Contains(tx.GTID) {
				return nil
			}
			if f.Target.stopsBefore(tx) {
				return done
			}
			if err := fn(tx); err != nil {
				return err
			}
			pos.Advance(tx.GTID)
			if f.Target.GTID != nil && tx.GTID == *f.Target.GTID {
				return done
			}
			return nil
		})
	})
	switch {
	case errors.Is(err, done):
		return pos, nil
	case err != nil:
		return pos, err
	case f.Target.GTID != nil:
		return pos, fmt.Errorf("region %s holds no transaction %s after %s: the binlog ends at %s", f.Catalog.Pipeline.Region, f.Target.GTID, f.From, pos)
	}
	return pos, nil
}

// Reach is how far a replay from one position can go in a region.
type Reach struct {
	// End is the position after the last transaction replayable without a
	// gap, EndTime that transaction's commit time.
	End     Pos       `json:"end"`
	EndTime time.Time `json:"end_time"`
	// Gap describes the first break in the chain ("" when none), and
	// Beyond is where the region's binlog really ends, past it.
	Gap    string `json:"gap,omitempty"`
	Beyond string `json:"beyond,omitempty"`
}

// Reach reads the headers of the chunks after From (not their events) and
// follows the chain of positions: a restore checks it before loading
// anything, so a gap is refused up front instead of after a long load.
func (f *Feed) Reach(ctx context.Context) (Reach, error) {
	r := Reach{End: f.From.Clone()}
	refs, err := f.Catalog.List(ctx)
	if err != nil {
		return r, err
	}
	first, err := f.firstAfter(ctx, refs)
	if err != nil {
		return r, err
	}
	prev := ""
	for _, ref := range refs[first:] {
		h, err := f.Catalog.Header(ctx, ref)
		if err != nil {
			return r, err
		}
		start, err1 := ParsePos(h.Start)
		end, err2 := ParsePos(h.End)
		if err1 != nil || err2 != nil {
			return r, fmt.Errorf("region %s: binlog chunk %d: bad positions %q, %q", f.Catalog.Pipeline.Region, ref.Seq, h.Start, h.End)
		}
		switch {
		case prev == "" && !r.End.Covers(start):
			r.Gap = fmt.Sprintf("the binlog after %s is missing: the region's resumes at %s (chunk %d)", r.End, h.Start, ref.Seq)
		case prev != "" && h.Start != prev:
			r.Gap = fmt.Sprintf("binlog chunk %d starts at %s, the chunk before ends at %s", ref.Seq, h.Start, prev)
		}
		if r.Gap != "" {
			last := refs[len(refs)-1]
			if lh, err := f.Catalog.Header(ctx, last); err == nil {
				r.Beyond = lh.End
			}
			return r, nil
		}
		r.End, r.EndTime, prev = end, time.Unix(h.LastTime, 0).UTC(), h.End
	}
	return r, nil
}

// firstAfter returns the index of the first chunk that holds a transaction
// after From, by position: a binary search on the chunks' end positions, which
// grow with their sequence numbers, reading O(log n) headers instead of the
// whole history. Not by commit time: a statement that ran for minutes across a
// snapshot commits with a time from before it, in a chunk a time bound skips.
func (f *Feed) firstAfter(ctx context.Context, refs []ChunkRef) (int, error) {
	var ferr error
	i := sort.Search(len(refs), func(i int) bool {
		if ferr != nil {
			return true
		}
		h, err := f.Catalog.Header(ctx, refs[i])
		if err != nil {
			ferr = err
			return true
		}
		end, err := ParsePos(h.End)
		if err != nil {
			ferr = fmt.Errorf("region %s: binlog chunk %d: %w", f.Catalog.Pipeline.Region, refs[i].Seq, err)
			return true
		}
		return !f.From.Covers(end)
	})
	return i, ferr
}

// each opens the chunks in order, downloading up to Prefetch ahead.
func (f *Feed) each(ctx context.Context, refs []ChunkRef, fn func(ChunkRef, *chunkReader) error) error {
	ahead := f.Prefetch
	if ahead <= 0 {
		ahead = 4
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		data []byte
		err  error
	}
	futures := make(chan chan result, ahead)
	go func() {
		defer close(futures)
		for _, ref := range refs {
			ch := make(chan result, 1)
			select {
			case futures <- ch:
			case <-ctx.Done():
				return
			}
			go func() {
				data, err := f.Catalog.read(ctx, ref)
				ch <- result{data, err}
			}()
		}
	}()
	i := 0
	for fut := range futures {
		r := <-fut
		if r.err != nil {
			return r.err
		}
		cr, err := newChunkReader(bytesReader(r.data))
		if err != nil {
			return fmt.Errorf("region %s: %s: %w", f.Catalog.Pipeline.Region, refs[i].Object.Key, err)
		}
		if err := fn(refs[i], cr); err != nil {
			return err
		}
		i++
	}
	return ctx.Err()
}

// replayChunk regroups a chunk's events into transactions.
func replayChunk(cr *chunkReader, fn func(*Txn) error) error {
	a := &assembler{}
	if _, err := a.feed(cr.FDE); err != nil {
		return err
	}
	for {
		ev, err := cr.next()
		if err == io.EOF {
			if a.cur != nil {
				return fmt.Errorf("chunk ends inside transaction %s", a.cur.GTID)
			}
			return nil
		}
		if err != nil {
			return err
		}
		tx, err := a.feed(ev)
		if err != nil {
			return err
		}
		if tx != nil {
			if err := fn(tx); err != nil {
				return err
			}
		}
	}
}
