package postgres

import (
	"bytes"
	"context"
	"errors"
	"io"
	"iter"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
)

// After a failover the same process reconnects to the new primary: what a
// region held on the old timeline past the switch point must not be taken
// as durable, or the new primary's slot is confirmed past what the region
// holds. A session's durable position is rebuilt from the store instead.
func TestDurableIsRebuiltPerSession(t *testing.T) {
	tg := fileTargets(t, "orders", "eu")[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tg.start(ctx, testenv.Logger(t), 0, 1)
	close(tg.jobs)
	tg.setDurable(0x5000000, 1, nil) // timeline 1 reached 0/5000000
	// Timeline 2 branched at 0/3000000; the store holds its WAL to 0/3800000.
	lineage := []TimelineBegin{{TLI: 1}, {TLI: 2, Begin: 0x3000000}}
	if got := tg.durableOn(lineage); got != 0 {
		t.Fatalf("a timeline-1 position past the switch counts as durable on timeline 2: %s", got)
	}
	tg.start(ctx, testenv.Logger(t), 0x3800000, 2)
	close(tg.jobs)
	if d, _, _ := tg.Durable(); d != 0x3800000 {
		t.Fatalf("durable after the new session = %s, want the store's 0/3800000", d)
	}
	// On the same lineage, before the switch, the last known position stands.
	tg.setDurable(0x3900000, 2, nil)
	if got := tg.durableOn(lineage); got != 0x3900000 {
		t.Fatalf("durableOn = %s, want 0/3900000", got)
	}
	tg.setDurable(0x2000000, 1, nil) // an older, lower position: ignored
	if d, _, _ := tg.Durable(); d != 0x3900000 {
		t.Fatalf("durable moved back to %s", d)
	}
}

// A region slower than the stream (one that does not gate the
// acknowledgement, beside a sync region handed WAL at every commit group)
// writes what piled up as one chunk: before coalesce it wrote one object
// per flush, a PUT per commit group.
func TestCoalesceMergesQueuedChunks(t *testing.T) {
	tg := fileTargets(t, "orders", "eu")[0]
	seg := Segment{TLI: 1, No: 3}
	name := seg.Name(16 << 20)
	buf := []byte("aaaabbbbccccdddd")
	part := func(from, to uint64) job {
		return job{seg: seg, segName: name, from: from, to: to, data: buf[from:to], end: seg.Start(16<<20) + LSN(to)}
	}
	jobs := make(chan job, 8)
	jobs <- part(4, 8)
	jobs <- part(8, 12)
	whole := job{seg: seg, segName: name, to: 16, data: buf, whole: true, end: seg.Start(16<<20) + 16}
	jobs <- whole
	jobs <- part(12, 16)

	j, weight, after := tg.coalesce(part(0, 4), jobs)
	if j.from != 0 || j.to != 12 || string(j.data) != "aaaabbbbcccc" || j.end != seg.Start(16<<20)+12 {
		t.Fatalf("coalesced job = %d..%d %q end %s, want 0..12 %q", j.from, j.to, j.data, j.end, "aaaabbbbcccc")
	}
	if weight != 12 {
		t.Fatalf("weight = %d, want the three chunks' 12 bytes", weight)
	}
	if after == nil || !after.whole {
		t.Fatalf("the whole segment queued after the chunks was not handed back: %+v", after)
	}
	if string(buf) != "aaaabbbbccccdddd" {
		t.Fatalf("coalesce wrote into the session's buffer: %q", buf)
	}
	// The whole segment is not merged with anything.
	if j2, w2, a2 := tg.coalesce(*after, jobs); !j2.whole || w2 != 16 || a2 != nil {
		t.Fatalf("a whole segment was coalesced: whole=%v weight=%d after=%v", j2.whole, w2, a2)
	}
	// A gap ends the merge (12..16 continues 8..12, 14..16 does not); a
	// closed queue hands back nothing.
	jobs <- part(14, 16)
	close(jobs)
	j, _, after = tg.coalesce(part(8, 12), jobs)
	if j.to != 16 || after == nil || after.from != 14 {
		t.Fatalf("chunks with a gap between were merged: %d..%d, after %+v", j.from, j.to, after)
	}
	if j, _, after = tg.coalesce(part(14, 16), jobs); j.to != 16 || after != nil {
		t.Fatalf("a closed queue handed back a job: %+v", after)
	}
}

// In zero-RPO mode a region that gates nothing is written once per pace
// (the flush interval), not once per commit group: the commit groups of a
// pace go in one chunk. Before the pace it wrote a chunk per group as fast
// as its store took them, beside the sync region's writes on the same CPU.
func TestPacedRegionWritesOncePerPace(t *testing.T) {
	tg := fileTargets(t, "orders", "eu")[0]
	tg.Required = false
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const segSize = 16 << 20
	tg.setSession(false, nil, 500*time.Millisecond)
	wg := tg.start(ctx, testenv.Logger(t), 0, 1)
	seg := Segment{TLI: 1, No: 1}
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(i)
	}
	// 20 commit groups over 400 ms: the first is written at once, the
	// other 19 wait out the pace together.
	for i := range 20 {
		from, to := uint64(i*200), uint64(i*200+200)
		j := job{seg: seg, segName: seg.Name(segSize), from: from, to: to, data: buf[from:to], end: seg.Start(segSize) + LSN(to)}
		if err := tg.enqueue(ctx, j); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	end := seg.Start(segSize) + 4000
	testenv.WaitFor(t, 10*time.Second, "the region holds the 20 groups", func() bool { d, _, _ := tg.Durable(); return d >= end })
	close(tg.jobs)
	wg.Wait()
	objs, err := tg.Catalog.List(ctx, segSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) > 3 {
		t.Fatalf("the paced region wrote %d chunks for 20 commit groups in 400 ms, want at most 3 (pace 500 ms)", len(objs))
	}
	var data []byte
	for _, o := range objs {
		if !o.Partial || uint64(len(data)) != o.From {
			t.Fatalf("chunk %s: not the partial chunk from %d", o.Object.Key, len(data))
		}
		rc, err := tg.Catalog.Pipeline.Open(ctx, o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, b...)
	}
	if string(data) != string(buf[:4000]) {
		t.Fatalf("the chunks hold %d bytes, not the 4000 handed", len(data))
	}
}

// listCounter counts List calls and blocks each until its context ends: a
// store that takes connections and answers nothing.
type listCounter struct {
	storage.Store
	lists atomic.Int32
}

func (l *listCounter) List(ctx context.Context, prefix string) iter.Seq2[storage.ObjectInfo, error] {
	return func(yield func(storage.ObjectInfo, error) bool) {
		l.lists.Add(1)
		<-ctx.Done()
		yield(storage.ObjectInfo{}, ctx.Err())
	}
}

// A region that has missed WAL for seconds when the stream reconnects (its
// store hangs, but its queue has not filled yet, so it is not lagging) is not
// asked where its WAL ends: it resumes from the position last known durable,
// behind. Asking it held every region's reconnect for the 5 s list timeout,
// the healthy regions' exposure with it (TestStoreOutage on a slow machine:
// p99 5.5 s).
func TestSlowRegionIsNotAskedAtReconnect(t *testing.T) {
	tg := fileTargets(t, "orders", "eu")[0]
	hang := &listCounter{Store: tg.Catalog.Pipeline.Store}
	tg.Catalog.Pipeline.Store = hang
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tg.start(ctx, testenv.Logger(t), 0, 1)
	close(tg.jobs)
	tg.setDurable(0x3000000, 1, nil)
	tg.mu.Lock()
	tg.missed(0x3800000)
	tg.missing[0].at = time.Now().Add(-3 * time.Second)
	tg.mu.Unlock()
	tg.endSession(time.Now())
	end, ok, unreachable, err := tg.resumeFrom(ctx, []TimelineBegin{{TLI: 1}}, 16<<20, 0x1000000)
	if err != nil || !ok || !unreachable || end != 0x3000000 {
		t.Fatalf("resumeFrom = %s ok %v unreachable %v err %v, want 0/3000000 from memory, unreachable", end, ok, unreachable, err)
	}
	if n := hang.lists.Load(); n != 0 {
		t.Fatalf("the region missing WAL for 3 s was asked %d times where its WAL ends", n)
	}
}

// wholeGate holds every upload of a whole segment (not a partial chunk)
// until open is closed.
type wholeGate struct {
	storage.Store
	open chan struct{}
}

func (g *wholeGate) Put(ctx context.Context, key string, r io.Reader) error {
	if !strings.Contains(key, ".partial/") && strings.Contains(key, "/wal/") {
		select {
		case <-g.open:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Store.Put(ctx, key, r)
}

// A sealed segment the region holds as chunks is compacted beside the next
// segment's chunks, not before them: while its whole upload hangs, the next
// chunks become durable. Written in line, the upload held them back (at
// every seal, the healthy regions' exposure in TestStoreOutage rose by it:
// p99 4.9 s in CI). Until the compaction lands, ReadSegment (a lagging
// region's catch-up) reads the segment from its chunks.
func TestSealedSegmentIsCompactedBesideTheStream(t *testing.T) {
	const segSize = 1 << 20
	tg := fileTargets(t, "orders", "eu")[0]
	gate := &wholeGate{Store: tg.Catalog.Pipeline.Store, open: make(chan struct{})}
	tg.Catalog.Pipeline.Store = gate
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wg := tg.start(ctx, testenv.Logger(t), 0, 1)
	seg1, seg2 := Segment{TLI: 1, No: 1}, Segment{TLI: 1, No: 2}
	buf := make([]byte, segSize)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	part := func(s Segment, from, to uint64) job {
		return job{seg: s, segName: s.Name(segSize), from: from, to: to, data: buf[from:to], end: s.Start(segSize) + LSN(to)}
	}
	for _, j := range []job{
		part(seg1, 0, segSize/2), part(seg1, segSize/2, segSize),
		{seg: seg1, segName: seg1.Name(segSize), to: segSize, data: buf, whole: true, end: seg2.Start(segSize)},
		part(seg2, 0, 4096),
	} {
		if err := tg.enqueue(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	want := seg2.Start(segSize) + 4096
	testenv.WaitFor(t, 10*time.Second, "the next segment's chunk is durable while the sealed one's upload hangs", func() bool {
		d, _, _ := tg.Durable()
		return d >= want
	})
	got, err := tg.Catalog.ReadSegment(ctx, seg1.Name(segSize), segSize)
	if err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("ReadSegment before the compaction: %d bytes, %v; want the segment from its chunks", len(got), err)
	}
	if _, err := tg.Catalog.ReadSegment(ctx, seg2.Name(segSize), segSize); !errors.Is(err, ErrWALNotFound) {
		t.Fatalf("ReadSegment of a segment held only in part: %v, want ErrWALNotFound", err)
	}
	close(gate.open)
	close(tg.jobs)
	wg.Wait()
	objs, err := tg.Catalog.List(ctx, segSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.Segment == seg1 && o.Partial {
			t.Fatalf("chunk %s of the compacted segment left behind", o.Object.Key)
		}
	}
	if got, err := tg.Catalog.ReadSegment(ctx, seg1.Name(segSize), segSize); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("ReadSegment after the compaction: %d bytes, %v", len(got), err)
	}
}

// Exposure is the age of the oldest WAL the region lacks. A region that
// writes each chunk while the next is handed to it is as exposed as its
// oldest unwritten chunk is old; it was reported exposed since it first fell
// behind, which under a steady stream grew without bound (TestStoreOutage:
// 4 s on a loaded machine where each write took under one).
func TestExposureIsTheOldestMissingWAL(t *testing.T) {
	tg := fileTargets(t, "orders", "eu")[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tg.start(ctx, testenv.Logger(t), 0x1000000, 1)
	close(tg.jobs)
	tg.mu.Lock()
	tg.missed(0x1000100)
	tg.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	tg.mu.Lock()
	tg.missed(0x1000200)
	tg.mu.Unlock()
	if x := tg.Exposure(time.Now()); x < 300*time.Millisecond {
		t.Fatalf("exposure %s with WAL handed 300 ms ago missing", x)
	}
	tg.setDurable(0x1000100, 1, nil)
	if x := tg.Exposure(time.Now()); x <= 0 || x > 250*time.Millisecond {
		t.Fatalf("exposure %s once the older chunk is written, want the newer one's age (near 0)", x)
	}
	tg.setDurable(0x1000200, 1, nil)
	if x := tg.Exposure(time.Now()); x != 0 {
		t.Fatalf("exposure %s holding everything", x)
	}
	// Bounded: past maxMissing the newest entry grows and keeps its time.
	tg.mu.Lock()
	for i := range maxMissing + 10 {
		tg.missed(0x2000000 + LSN(i))
	}
	n, last := len(tg.missing), tg.missing[len(tg.missing)-1].end
	tg.mu.Unlock()
	if n != maxMissing || last != 0x2000000+maxMissing+9 {
		t.Fatalf("%d entries, the last ending at %s", n, last)
	}
}

// A region whose queue takes a sealed segment's tail chunk but not then the
// whole segment falls behind with every chunk queued: its catch-up must
// start at that segment, or the region never gets it as one object (the
// stream gives the whole segment to no one else).
func TestFallingBehindAtAWholeSegmentCatchesItUp(t *testing.T) {
	const segSize = 1 << 20
	targets := fileTargets(t, "orders", "a", "b")
	a, b := targets[0], targets[1]
	gate := &wholeGate{Store: b.Catalog.Pipeline.Store, open: make(chan struct{})}
	b.Catalog.Pipeline.Store = &partialGate{wholeGate: gate}
	b.QueueBytes = segSize
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seg1, seg2 := Segment{TLI: 1, No: 1}, Segment{TLI: 1, No: 2}
	wa, wb := a.start(ctx, testenv.Logger(t), seg1.Start(segSize), 1), b.start(ctx, testenv.Logger(t), seg1.Start(segSize), 1)
	ss := &session{s: &Shipper{Cluster: "orders", Targets: targets, Log: testenv.Logger(t)}, segSize: segSize, tli: 1, seg: seg2,
		lineage: []TimelineBegin{{TLI: 1}}, catch: &catchUp{open: seg2}}
	ss.catch.ctx, ss.catch.stop = context.WithCancel(ctx)
	buf := make([]byte, segSize)
	part := func(from, to uint64) job {
		return job{seg: seg1, segName: seg1.Name(segSize), from: from, to: to, data: buf[from:to], end: seg1.Start(segSize) + LSN(to)}
	}
	for _, j := range []job{part(0, segSize/2), part(segSize/2, segSize), {seg: seg1, segName: seg1.Name(segSize), to: segSize, data: buf, whole: true, end: seg2.Start(segSize)}} {
		if err := ss.hand(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	if !b.isLagging() {
		t.Fatalf("region b took the whole segment into a full queue (%d queued)", len(b.jobs))
	}
	b.mu.Lock()
	next := b.catchNext
	b.mu.Unlock()
	if next != seg1.Start(segSize) {
		t.Fatalf("region b's catch-up starts at %s, want the segment it lacks whole, %s", next, seg1.Start(segSize))
	}
	ss.catch.halt()
	close(gate.open)
	close(a.jobs)
	close(b.jobs)
	wa.Wait()
	wb.Wait()
}

// partialGate holds every chunk upload too.
type partialGate struct{ *wholeGate }

func (g *partialGate) Put(ctx context.Context, key string, r io.Reader) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.Put(ctx, key, r)
}

// A sealed segment a region holds only as chunks when a session begins (the
// last one ended before compacting it) is compacted by the new session.
func TestLeftoverChunksAreCompacted(t *testing.T) {
	const segSize = 1 << 20
	tg := fileTargets(t, "orders", "eu")[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seg1, seg2 := Segment{TLI: 1, No: 1}, Segment{TLI: 1, No: 2}
	buf := bytes.Repeat([]byte("wal."), segSize/4)
	for _, c := range [][2]uint64{{0, segSize / 2}, {segSize / 2, segSize}} {
		if err := tg.Catalog.PutPartial(ctx, seg1.Name(segSize), c[0], c[1], buf[c[0]:c[1]]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tg.Catalog.PutPartial(ctx, seg2.Name(segSize), 0, 100, buf[:100]); err != nil {
		t.Fatal(err)
	}
	lineage := []TimelineBegin{{TLI: 1}}
	end, ok, _, err := tg.resumeFrom(ctx, lineage, segSize, 0)
	if err != nil || !ok || end != seg2.Start(segSize)+100 {
		t.Fatalf("resumeFrom = %s, %v, %v", end, ok, err)
	}
	wg := tg.start(ctx, testenv.Logger(t), end, 1)
	if err := tg.compactLeftovers(ctx, segSize); err != nil {
		t.Fatal(err)
	}
	close(tg.jobs)
	wg.Wait()
	objs, err := tg.Catalog.List(ctx, segSize)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, strings.TrimPrefix(o.Object.Key, "orders/wal/"))
	}
	if len(objs) != 2 || objs[0].Segment != seg1 || objs[0].Partial || objs[1].Segment != seg2 || !objs[1].Partial {
		t.Fatalf("after the session: %v; want segment 1 whole and segment 2's chunk", names)
	}
	if d, _, _ := tg.Durable(); d != end {
		t.Fatalf("a compaction moved the durable position to %s", d)
	}
}
