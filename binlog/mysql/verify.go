package mysql

import (
	"context"
	"fmt"
	"iter"
	"time"
)

// VerifyReport is what Verify found in one region's binlog.
type VerifyReport struct {
	Region string `json:"region"`
	Chunks int    `json:"chunks"`
	Txns   int    `json:"transactions"`
	// First is where the region's binlog starts, End where it ends.
	First    string    `json:"first"`
	End      string    `json:"end"`
	LastTime time.Time `json:"last_commit_time"`
	// Bytes are the stored bytes read.
	Bytes    int64    `json:"bytes_read"`
	Problems []string `json:"problems"`
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Parallel is how many chunks are read ahead at once (default 4). The
	// chain is checked in order; about Parallel chunks are in memory.
	Parallel int
	// Progress, if set, is told the stored bytes read so far and the total.
	Progress func(done, total int64)
}

// Verify reads every chunk of the region's binlog: each one's checksum, its
// events regrouped into whole transactions, and its continuity with the chunk
// before (a chunk must start where the previous one ends). It names every
// bad chunk, not only the first.
func Verify(ctx context.Context, cat *Catalog, o VerifyOptions) (VerifyReport, error) {
	rep := VerifyReport{Region: cat.Pipeline.Region}
	refs, err := cat.List(ctx)
	if err != nil {
		return rep, err
	}
	var total int64
	for _, ref := range refs {
		total += ref.Object.Size
	}
	prevEnd := ""
	for i, r := range readAhead(ctx, cat, refs, o.Parallel) {
		ref := refs[i]
		rep.Bytes += ref.Object.Size
		if o.Progress != nil {
			o.Progress(rep.Bytes, total)
		}
		if r.err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("chunk %d: %v", ref.Seq, r.err))
			prevEnd = ""
			continue
		}
		cr, err := newChunkReader(bytesReader(r.data))
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("chunk %d (%s): %v", ref.Seq, ref.Object.Key, err))
			prevEnd = ""
			continue
		}
		h := cr.Header
		if rep.Chunks == 0 {
			rep.First = h.Start
		}
		if prevEnd != "" && h.Start != prevEnd {
			rep.Problems = append(rep.Problems, fmt.Sprintf("gap before chunk %d: it starts at %q, the chunk before ends at %q", ref.Seq, h.Start, prevEnd))
		}
		n := 0
		if err := replayChunk(cr, func(*Txn) error { n++; return nil }); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("chunk %d (%s): %v", ref.Seq, ref.Object.Key, err))
		} else if n != h.Txns {
			rep.Problems = append(rep.Problems, fmt.Sprintf("chunk %d: %d transactions, its header says %d", ref.Seq, n, h.Txns))
		}
		rep.Chunks++
		rep.Txns += n
		rep.End, rep.LastTime = h.End, time.Unix(h.LastTime, 0).UTC()
		prevEnd = h.End
	}
	return rep, ctx.Err()
}

// readResult is one chunk's bytes, or why they could not be read.
type readResult struct {
	data []byte
	err  error
}

// readAhead yields the chunks' contents in order while up to parallel of the
// following ones are read in the background.
func readAhead(ctx context.Context, cat *Catalog, refs []ChunkRef, parallel int) iter.Seq2[int, readResult] {
	if parallel <= 0 {
		parallel = 4
	}
	return func(yield func(int, readResult) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		pending := make(chan chan readResult, parallel)
		go func() {
			defer close(pending)
			for _, ref := range refs {
				ch := make(chan readResult, 1)
				select {
				case pending <- ch:
				case <-ctx.Done():
					return
				}
				go func() {
					data, err := cat.read(ctx, ref)
					ch <- readResult{data, err}
				}()
			}
		}()
		i := 0
		for ch := range pending {
			if !yield(i, <-ch) {
				return
			}
			i++
		}
	}
}

// Covers reports whether the region's binlog continues position p: a restore
// from a snapshot at p can replay to End. It is the check a backup's
// usefulness rests on.
func (r VerifyReport) Covers(p Pos) error {
	first, err := ParsePos(r.First)
	if err != nil {
		return err
	}
	if r.Chunks == 0 {
		return fmt.Errorf("the region holds no binlog")
	}
	if !p.Covers(first) {
		return fmt.Errorf("the region's binlog starts at %q, after %q", r.First, p)
	}
	return nil
}
