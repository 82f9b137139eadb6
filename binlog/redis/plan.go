package redis

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Reach is how far a region's stream rolls a base forward.
type Reach struct {
	// End is the offset after the last chunk of the unbroken chain, EndMS
	// when drd received that chunk's last command.
	End   int64 `json:"end"`
	EndMS int64 `json:"end_ms"`
	// Gap describes the first break in the chain ("" when none).
	Gap string `json:"gap,omitempty"`
	// DurableAt is when drd sealed the chain's last chunk: the region
	// holds every command drd received before then.
	DurableAt time.Time `json:"durable_at,omitzero"`
}

// Chain returns the chunks that roll a base at offset from of history
// replid forward, in order, up to the first gap, and how far they reach.
// Where a history ends, the chain goes on into a history whose first chunk
// says it continues it there (a failover).
func (c *Catalog) Chain(ctx context.Context, replid string, from int64) ([]ChunkRef, Reach, error) {
	refs, err := c.List(ctx)
	if err != nil {
		return nil, Reach{}, err
	}
	return c.ChainOf(ctx, refs, replid, from)
}

// ChainOf is Chain over refs, a listing the caller made (List): what it
// compares the chain with, such as the region's end (EndOf), comes from the
// same moment, while drd goes on shipping.
func (c *Catalog) ChainOf(ctx context.Context, refs []ChunkRef, replid string, from int64) ([]ChunkRef, Reach, error) {
	r := Reach{End: from}
	var chain []ChunkRef
	for seen := map[string]bool{}; !seen[replid]; {
		seen[replid] = true
		for _, ref := range refs {
			if ref.ReplID != replid || ref.End <= r.End {
				continue
			}
			if ref.Start > r.End {
				r.Gap = fmt.Sprintf("the stream of history %s after offset %d is missing: the region's resumes at %d (%s)", replid, r.End, ref.Start, ref.Object.Key)
				return chain, r, nil
			}
			chain = append(chain, ref)
			r.End, r.EndMS, r.DurableAt = ref.End, ref.LastMS, ref.Sealed
		}
		next, err := c.continuation(ctx, refs, replid, r.End)
		if err != nil {
			return chain, r, err
		}
		if next == "" {
			break
		}
		replid = next
	}
	return chain, r, nil
}

// continuation returns the history that continues replid at offset end
// ("" when none does).
func (c *Catalog) continuation(ctx context.Context, refs []ChunkRef, replid string, end int64) (string, error) {
	for _, ref := range refs {
		if ref.ReplID == replid || ref.Start != end {
			continue
		}
		cr, closer, err := c.Open(ctx, ref)
		if err != nil {
			return "", err
		}
		closer.Close()
		if cr.Header.Prev == replid {
			return ref.ReplID, nil
		}
	}
	return "", nil
}

// Replay calls apply for every command of chain after offset from, in
// order, stopping before the first one received after stop (zero: no
// stop). It returns the stream offset the result stands at: the end of the
// last chunk read whole, or of the last command applied when it stopped.
//
// The first command applied is preceded by a SELECT of the database the
// stream had selected there: the SELECT the primary sent may lie before
// from, in what the base already holds.
func (c *Catalog) Replay(ctx context.Context, chain []ChunkRef, from int64, stop time.Time, apply func(Command) error) (int64, error) {
	pos := from
	db, selected := -1, false
	applySelected := func(cmd Command) error {
		if !selected && db >= 0 && !isSelect(cmd.RESP) {
			if err := apply(Command{MS: cmd.MS, End: -1, RESP: selectCommand(db)}); err != nil {
				return err
			}
		}
		selected = true
		return apply(cmd)
	}
	for i, ref := range chain {
		cr, closer, err := c.Open(ctx, ref)
		if err != nil {
			return pos, err
		}
		if i == 0 {
			db = cr.Header.DB
		}
		end, stopped, err := replayChunk(cr, pos, stop, &db, applySelected)
		closer.Close()
		if err != nil {
			return pos, fmt.Errorf("region %s: %s: %w", c.Pipeline.Region, ref.Object.Key, err)
		}
		pos = max(pos, end)
		if stopped {
			break
		}
	}
	return pos, nil
}

// replayChunk applies the chunk's commands after from and up to stop. It
// returns the offset the result stands at and whether it stopped early.
func replayChunk(cr *ChunkReader, from int64, stop time.Time, db *int, apply func(Command) error) (end int64, stopped bool, err error) {
	end = from
	for {
		cmd, err := cr.Next()
		if err == io.EOF {
			// The keepalives after the last command belong to the chunk.
			return max(end, cr.Header.End), false, nil
		}
		if err != nil {
			return end, false, err
		}
		if cmd.End <= from {
			if n, ok := selectedDB(cmd.RESP); ok {
				*db = n // held by the base, but it says where the next write goes
			}
			continue
		}
		if !stop.IsZero() && cmd.MS > stop.UnixMilli() {
			return end, true, nil
		}
		if err := apply(cmd); err != nil {
			return end, false, err
		}
		end = cmd.End
	}
}

// selectCommand is SELECT db as RESP.
func selectCommand(db int) []byte {
	n := strconv.Itoa(db)
	return []byte("*2\r\n$6\r\nSELECT\r\n$" + strconv.Itoa(len(n)) + "\r\n" + n + "\r\n")
}

// selectedDB reads SELECT <db> from a command's RESP.
func selectedDB(resp []byte) (int, bool) {
	if !isSelect(resp) {
		return 0, false
	}
	sc, err := scanOne(resp)
	if err != nil || sc.args != 2 {
		return 0, false
	}
	n, err := strconv.Atoi(string(sc.sub))
	return n, err == nil
}

// isSelect reports whether resp is a SELECT.
func isSelect(resp []byte) bool {
	return bytes.HasPrefix(resp, []byte("*2\r\n$6\r\n")) && len(resp) > 14 && strings.EqualFold(string(resp[8:14]), "select")
}
