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
