package mysql

import (
	"context"
	"fmt"
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
	Problems []string  `json:"problems"`
}

// Verify reads every chunk of the region's binlog: each one's checksum, its
// events regrouped into whole transactions, and its continuity with the chunk
// before (a chunk must start where the previous one ends).
func Verify(ctx context.Context, cat *Catalog) (VerifyReport, error) {
	rep := VerifyReport{Region: cat.Pipeline.Region}
	refs, err := cat.List(ctx)
	if err != nil {
		return rep, err
	}
	prevEnd := ""
	for _, ref := range refs {
		data, err := cat.read(ctx, ref)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("chunk %d: %v", ref.Seq, err))
			prevEnd = ""
			continue
		}
		cr, err := newChunkReader(bytesReader(data))
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
	return rep, nil
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
