package mysql

import (
	"testing"
	"time"
)

// Exposure is the age of the oldest transaction the region lacks. A region
// that writes each batch while the next is handed to it was reported
// exposed since it first fell behind, which under a steady stream grew
// without bound; a lagging region counts from when it began missing
// batches, also for the catch-up batches queued later.
func TestExposureIsTheOldestMissingBatch(t *testing.T) {
	tg := &Target{}
	tg.mu.Lock()
	tg.queuedLocked(&batch{})
	tg.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	tg.mu.Lock()
	tg.queuedLocked(&batch{})
	tg.mu.Unlock()
	if x := tg.Exposure(time.Now()); x < 300*time.Millisecond {
		t.Fatalf("exposure %s with a batch handed 300 ms ago unwritten", x)
	}
	tg.wrote()
	if x := tg.Exposure(time.Now()); x <= 0 || x > 250*time.Millisecond {
		t.Fatalf("exposure %s once the older batch is written, want the newer one's age (near 0)", x)
	}
	tg.wrote()
	if x := tg.Exposure(time.Now()); x != 0 {
		t.Fatalf("exposure %s holding everything", x)
	}

	// Lagging since 2 s ago: a catch-up batch queued now still counts from then.
	tg.mu.Lock()
	tg.lagging, tg.lagSince = true, time.Now().Add(-2*time.Second)
	tg.queuedLocked(&batch{})
	tg.lagging, tg.lagSince = false, time.Time{} // taken back
	tg.mu.Unlock()
	if x := tg.Exposure(time.Now()); x < 2*time.Second {
		t.Fatalf("exposure %s of a region taken back with a catch-up batch from 2 s of lag unwritten", x)
	}
	tg.wrote()
	if x := tg.Exposure(time.Now()); x != 0 {
		t.Fatalf("exposure %s after the catch-up batch is written", x)
	}
}
