package postgres

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TimelineBegin says where a timeline starts: its parent ends at Begin.
type TimelineBegin struct {
	TLI   uint32
	Begin LSN // 0 for the first timeline
}

// ParseHistory parses a timeline history file ("1\t0/3000158\tno recovery target
// specified" per line) for timeline tli and returns every timeline of its
// lineage with its begin point, oldest first, tli last.
func ParseHistory(r io.Reader, tli uint32) ([]TimelineBegin, error) {
	var out []TimelineBegin
	var begin LSN
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("history of timeline %d: bad line %q", tli, line)
		}
		parent, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("history of timeline %d: bad timeline %q", tli, f[0])
		}
		end, err := ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("history of timeline %d: bad position %q", tli, f[1])
		}
		out = append(out, TimelineBegin{TLI: uint32(parent), Begin: begin})
		begin = end
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return append(out, TimelineBegin{TLI: tli, Begin: begin}), nil
}

// Lineage returns the newest timeline's lineage from the region's history files
// (just the timeline itself when it has none).
func (c *Catalog) Lineage(ctx context.Context, objs []WALObject) ([]TimelineBegin, error) {
	var newest uint32
	var hist *WALObject
	for i, w := range objs {
		switch {
		case w.History:
			n, _ := strconv.ParseUint(w.Name[:8], 16, 32)
			if uint32(n) >= newest {
				newest, hist = uint32(n), &objs[i]
			}
		case w.Segment.TLI > newest:
			newest, hist = w.Segment.TLI, nil
		}
	}
	if newest == 0 {
		return nil, nil
	}
	if hist == nil {
		return []TimelineBegin{{TLI: newest}}, nil
	}
	rc, err := c.Pipeline.Open(ctx, hist.Object)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return ParseHistory(rc, newest)
}

// TimelineOf returns the timeline PostgreSQL reads segment number no from: the
// newest timeline of the lineage that began at or before the segment (the
// segment holding a switch point is read from the new timeline's file).
func TimelineOf(lineage []TimelineBegin, no uint64, segSize uint64) uint32 {
	for i := len(lineage) - 1; i >= 0; i-- {
		if uint64(lineage[i].Begin)/segSize <= no {
			return lineage[i].TLI
		}
	}
	return lineage[0].TLI
}

// SegmentState is what a region holds of one segment.
type SegmentState string

// Segment states reported by Continuity.
const (
	Found     SegmentState = "found"     // stored whole
	Uploading SegmentState = "uploading" // only partial chunks: the open segment
	Missing   SegmentState = "missing"
)

// SegmentStatus is one segment on the path from a backup to the newest WAL.
type SegmentStatus struct {
	Name  string       `json:"name"`
	State SegmentState `json:"state"`
}

// Continuity walks the segments from start to the region's newest WAL along the
// lineage and reports each one that is not stored whole, plus the count found.
// A segment is whole as one object or as partial chunks that cover it: the
// shipper compacts a sealed segment's chunks into one object beside the
// stream, so for a moment a sealed segment has only its chunks.
func Continuity(objs []WALObject, lineage []TimelineBegin, start LSN, segSize uint64) (found int, problems []SegmentStatus, last string) {
	bySeg := map[Segment][]WALObject{}
	var maxNo uint64
	for _, w := range objs {
		if w.History {
			continue
		}
		bySeg[w.Segment] = append(bySeg[w.Segment], w)
		maxNo = max(maxNo, w.Segment.No)
	}
	if len(lineage) == 0 {
		return 0, nil, ""
	}
	for no := uint64(start) / segSize; no <= maxNo; no++ {
		seg := Segment{TLI: TimelineOf(lineage, no, segSize), No: no}
		name := seg.Name(segSize)
		last = name
		_, _, whole := segmentReach(bySeg[seg], segSize)
		switch {
		case whole:
			found++
		case len(bySeg[seg]) > 0 && no == maxNo:
			problems = append(problems, SegmentStatus{Name: name, State: Uploading})
		default:
			problems = append(problems, SegmentStatus{Name: name, State: Missing})
		}
	}
	sort.Slice(problems, func(i, j int) bool { return problems[i].Name < problems[j].Name })
	return found, problems, last
}

// ChunkedSegments returns, oldest first, the segments along the lineage
// below the newest that are stored only as partial chunks covering them:
// sealed segments whose compaction into one object did not happen.
func ChunkedSegments(objs []WALObject, lineage []TimelineBegin, segSize uint64) []Segment {
	if len(lineage) == 0 {
		return nil
	}
	bySeg, maxNo := onLineage(objs, lineage, segSize)
	var out []Segment
	for seg, ws := range bySeg {
		if _, _, whole := segmentReach(ws, segSize); whole && seg.No < maxNo && ws[0].Partial {
			out = append(out, seg)
		}
	}
	slices.SortFunc(out, func(a, b Segment) int { return cmp.Compare(a.No, b.No) })
	return out
}

// onLineage groups the WAL segment objects that lie on the lineage by
// segment, in objs' order (the whole object first, then chunks by offset),
// and returns the newest segment's number.
func onLineage(objs []WALObject, lineage []TimelineBegin, segSize uint64) (bySeg map[Segment][]WALObject, maxNo uint64) {
	bySeg = map[Segment][]WALObject{}
	for _, w := range objs {
		if w.History || w.Segment.TLI != TimelineOf(lineage, w.Segment.No, segSize) {
			continue
		}
		bySeg[w.Segment] = append(bySeg[w.Segment], w)
		maxNo = max(maxNo, w.Segment.No)
	}
	return bySeg, maxNo
}

// DurableEndOnLineage is DurableEnd along a lineage: each segment counts only in
// the timeline PostgreSQL would read it from (TimelineOf), so WAL a region
// holds on an abandoned branch, or an old timeline's last partial segment, does
// not count. It stops at the first gap.
func DurableEndOnLineage(objs []WALObject, lineage []TimelineBegin, segSize uint64) (end LSN, ok bool) {
	if len(lineage) == 0 {
		return 0, false
	}
	for _, w := range objs {
		if w.History || w.Segment.TLI != TimelineOf(lineage, w.Segment.No, segSize) {
			continue
		}
		segStart := w.Segment.Start(segSize)
		from, to := segStart+LSN(w.From), segStart+LSN(w.To)
		if !ok {
			if w.Partial && w.From != 0 {
				continue
			}
			end, ok = from, true
		}
		if from > end {
			break
		}
		end = max(end, to)
	}
	return end, ok
}

// Reach is how far a replay from one position can go in a region.
type Reach struct {
	// End is the end of the WAL replayable from the start without a gap, and
	// EndTime when the newest object before it was written: commits after
	// EndTime cannot be in it.
	End     LSN       `json:"end"`
	EndTime time.Time `json:"end_time"`
	// Gap is the first segment missing on the way to the region's newest WAL,
	// "" when there is none; Beyond is the end of the WAL stored past it,
	// which a replay from the start never reaches.
	Gap    string `json:"gap,omitempty"`
	Beyond LSN    `json:"beyond,omitempty"`
	// Reached is false when the region holds none of the WAL from the start.
	Reached bool `json:"reached"`
}

// ReachFrom walks the segments from start along the lineage, as PostgreSQL
// reads them (TimelineOf), and says where a replay must stop: at the first
// segment that is neither stored whole nor, for the newest segment, as partial
// chunks from its beginning. Commits in WAL stored past a gap are lost to a
// replay from start, so a restore to the newest WAL checks this first.
func ReachFrom(objs []WALObject, lineage []TimelineBegin, start LSN, segSize uint64) Reach {
	var r Reach
	if len(lineage) == 0 || segSize == 0 {
		return r
	}
	bySeg, maxNo := onLineage(objs, lineage, segSize)
	r.End = start
	for no := uint64(start) / segSize; no <= maxNo; no++ {
		seg := Segment{TLI: TimelineOf(lineage, no, segSize), No: no}
		end, t, whole := segmentReach(bySeg[seg], segSize)
		if end == 0 || (!whole && no < maxNo) {
			// maxNo's objects are on the lineage: that is how maxNo was found.
			last, _, _ := segmentReach(bySeg[Segment{TLI: TimelineOf(lineage, maxNo, segSize), No: maxNo}], segSize)
			r.Gap, r.Beyond = seg.Name(segSize), LSN(maxNo*segSize)+last
			if end > 0 { // the partial chunks before the hole still replay
				r.End, r.Reached = max(r.End, seg.Start(segSize)+end), true
				r.EndTime = later(r.EndTime, t)
			}
			return r
		}
		r.End, r.Reached = max(r.End, seg.Start(segSize)+end), true
		r.EndTime = later(r.EndTime, t)
	}
	return r
}

// segmentReach returns how many bytes of one segment its objects hold from
// its beginning, when the newest of them was written, and whether it is whole.
func segmentReach(ws []WALObject, segSize uint64) (end LSN, newest time.Time, whole bool) {
	var to uint64
	for _, w := range ws { // sorted: the whole object first, then chunks by offset
		if !w.Partial {
			return LSN(segSize), w.ModTime, true
		}
		if w.From > to {
			break
		}
		to = max(to, w.To)
		newest = later(newest, w.ModTime)
	}
	return LSN(to), newest, to >= segSize
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
