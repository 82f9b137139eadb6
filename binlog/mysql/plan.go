package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	// NotBefore skips chunks whose last commit is older (a snapshot's time minus
	// a margin): they cannot hold a transaction after From, and skipping them
	// avoids reading the whole history.
	NotBefore time.Time
	Target    StopAt
	// Prefetch is how many chunks are downloaded ahead (default 4).
	Prefetch int
}

// Run calls fn for each transaction in order and returns the position after
// the last one. It fails if a chunk is missing, corrupt, or the target GTID
// never appears.
func (f *Feed) Run(ctx context.Context, fn func(*Txn) error) (Pos, error) {
	refs, err := f.Catalog.List(ctx)
	if err != nil {
		return nil, err
	}
	for len(refs) > 0 && refs[0].LastTime < f.NotBefore.Unix() {
		refs = refs[1:]
	}
	pos := f.From.Clone()
	started := false
	var prevEnd string
	done := errors.New("target reached")
	err = f.each(ctx, refs, func(ref ChunkRef, cr *chunkReader) error {
		h := cr.Header
		if started && h.Start != prevEnd {
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
