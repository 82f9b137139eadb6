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
	s.SyncHanded(10)
	if st, newly, _ := s.SyncCheck(t0.Add(1500 * time.Millisecond)); !st || !newly {
		t.Fatalf("past the timeout: stalled %v newly %v", st, newly)
	}
	if st, newly, _ := s.SyncCheck(t0.Add(2 * time.Second)); !st || newly {
		t.Fatalf("still stalled: stalled %v newly %v (want reported once)", st, newly)
	}
	s.SyncStored(10)
	if st, _, recovered := s.SyncCheck(t0.Add(3 * time.Second)); st || !recovered {
		t.Fatalf("after the regions stored it: stalled %v recovered %v", st, recovered)
	}
	if _, w, stalled := s.SyncStatus(t0.Add(3 * time.Second)); w != 0 || stalled {
		t.Fatalf("after catching up: wait %v stalled %v", w, stalled)
	}
	var off SyncState
	off.SyncPending(t0)
	if st, _, _ := off.SyncCheck(t0.Add(time.Hour)); st {
		t.Fatal("a shipper with sync off reported a stall")
	}
}

// TestSyncWaitUnderSteadyLoad: log arrives all the time, each write is
// stored 100 ms after it was handed and something always waits for the next
// one. The wait is the oldest unstored write's age, about 100 ms, never a
// stall; it used to count from the last time nothing waited, and a healthy
// cluster under load was reported stalled after sync.timeout.
func TestSyncWaitUnderSteadyLoad(t *testing.T) {
	var s SyncState
	s.SetSyncPolicy(Sync{Mode: SyncRemoteDurable, Regions: []string{"us"}, Timeout: time.Second})
	t0 := time.Now()
	for i := range 100 { // 10 s of load
		now := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		s.SyncStored(uint64(i - 1))
		s.SyncPending(now)
		s.SyncHanded(uint64(i))
		s.SyncPending(now.Add(time.Millisecond)) // more arrives during the write
		if st, _, _ := s.SyncCheck(now.Add(50 * time.Millisecond)); st {
			t.Fatalf("reported stalled after %v of healthy load", now.Sub(t0))
		}
	}
	if _, w, _ := s.SyncStatus(t0.Add(9950 * time.Millisecond)); w > 200*time.Millisecond {
		t.Fatalf("wait %v under load, want the age of the write in flight (~100 ms)", w)
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

// The server's view is absent until the shipper asked the server, and with
// sync off; once asked it is what the server said, until cleared.
func TestSyncServerView(t *testing.T) {
	var s SyncState
	s.SetSyncPolicy(Sync{Mode: SyncRemoteDurable, Regions: []string{"us"}, Timeout: time.Second})
	if _, ok := s.SyncServer(); ok {
		t.Fatal("a view before the server was asked")
	}
	at := time.Now()
	_, _ = s.SetSyncServer(ServerSync{At: at, Synchronous: true, Waiting: 3})
	if v, ok := s.SyncServer(); !ok || !v.Synchronous || v.Waiting != 3 || !v.At.Equal(at) {
		t.Fatalf("view = %+v %v, want synchronous with 3 waiting", v, ok)
	}
	_, _ = s.SetSyncServer(ServerSync{}) // the session ended
	if _, ok := s.SyncServer(); ok {
		t.Fatal("a view after the session ended")
	}
	var off SyncState
	_, _ = off.SetSyncServer(ServerSync{At: at})
	if _, ok := off.SyncServer(); ok {
		t.Fatal("a view with sync off")
	}
}

// A fall of the server's synchronous replication is news once, after it was
// seen on, and so is its return; a cleared view (a session ended) changes
// neither.
func TestSyncServerNewsOnce(t *testing.T) {
	var s SyncState
	s.SetSyncPolicy(Sync{Mode: SyncRemoteDurable, Regions: []string{"us"}, Timeout: time.Second})
	now := time.Now()
	steps := []struct {
		v          ServerSync
		fell, back bool
	}{
		{ServerSync{At: now}, false, false},                    // off before drd's first acknowledgement: not news
		{ServerSync{At: now, Synchronous: true}, false, false}, // on
		{ServerSync{At: now}, true, false},                     // fell
		{ServerSync{}, false, false},                           // the session ended
		{ServerSync{At: now}, false, false},                    // still off in the next session: told already
		{ServerSync{At: now, Synchronous: true}, false, true},  // back
		{ServerSync{At: now, Synchronous: true}, false, false},
	}
	for i, st := range steps {
		if fell, back := s.SetSyncServer(st.v); fell != st.fell || back != st.back {
			t.Fatalf("step %d (%+v): fell %v back %v, want %v %v", i, st.v, fell, back, st.fell, st.back)
		}
	}
}
