package binlog

import (
	"testing"
	"time"
)

func TestSyncStateStallsOnceAndRecovers(t *testing.T) {
	var s SyncState
	s.SetSyncPolicy(Sync{Mode: SyncRemoteDurable, Regions: []string{"us"}, Timeout: time.Second})
	t0 := time.Now()
	s.SyncPending(t0)
	s.SyncPending(t0.Add(500 * time.Millisecond)) // the wait counts from the first
	if mode, w, stalled := s.SyncStatus(t0.Add(800 * time.Millisecond)); mode != SyncRemoteDurable || w != 800*time.Millisecond || stalled {
		t.Fatalf("status = %s %v %v", mode, w, stalled)
	}
	if st, newly := s.SyncStall(t0.Add(1500 * time.Millisecond)); !st || !newly {
		t.Fatalf("past the timeout: stalled %v newly %v", st, newly)
	}
	if st, newly := s.SyncStall(t0.Add(2 * time.Second)); !st || newly {
		t.Fatalf("still stalled: stalled %v newly %v (want reported once)", st, newly)
	}
	if !s.SyncCaughtUp() {
		t.Fatal("SyncCaughtUp did not report the stall it ended")
	}
	if _, w, stalled := s.SyncStatus(t0.Add(3 * time.Second)); w != 0 || stalled {
		t.Fatalf("after catching up: wait %v stalled %v", w, stalled)
	}
	var off SyncState
	off.SyncPending(t0)
	if st, _ := off.SyncStall(t0.Add(time.Hour)); st {
		t.Fatal("a shipper with sync off reported a stall")
	}
}

func TestSyncIncludes(t *testing.T) {
	p := Sync{Mode: SyncRemoteWrite, Regions: []string{"us"}}
	if !p.Includes("us") || p.Includes("eu") || p.Durable() {
		t.Fatalf("%+v: Includes(us) %v, Includes(eu) %v, Durable %v", p, p.Includes("us"), p.Includes("eu"), p.Durable())
	}
	if (Sync{Mode: SyncOff, Regions: []string{"us"}}).Includes("us") {
		t.Fatal("mode off includes a region")
	}
}
