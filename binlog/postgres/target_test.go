package postgres

import (
	"context"
	"testing"

	"github.com/drkit/drkit/internal/testenv"
)

// After a failover the same process reconnects to the new primary: what a
// region held on the old timeline past the switch point must not be taken
// as durable, or the new primary's slot is confirmed past what the region
// holds. A session's durable position is rebuilt from the store instead.
func TestDurableIsRebuiltPerSession(t *testing.T) {
	tg := fileTargets(t, "orders", "eu")[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tg.start(ctx, testenv.Logger(), 0, 1)
	close(tg.jobs)
	tg.setDurable(0x5000000, 1, nil) // timeline 1 reached 0/5000000
	// Timeline 2 branched at 0/3000000; the store holds its WAL to 0/3800000.
	lineage := []TimelineBegin{{TLI: 1}, {TLI: 2, Begin: 0x3000000}}
	if got := tg.durableOn(lineage); got != 0 {
		t.Fatalf("a timeline-1 position past the switch counts as durable on timeline 2: %s", got)
	}
	tg.start(ctx, testenv.Logger(), 0x3800000, 2)
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
