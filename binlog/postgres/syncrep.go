package postgres

import (
	"context"
	"sync"
	"time"
)

// Zero-RPO mode (clusters[].sync): drd is a synchronous standby. The server
// lists drd's application_name in synchronous_standby_names, so a commit
// returns only once drd reports a flush position past it, and drd reports
// flush only for what every sync region (and every required one, whose
// position confirms the slot) holds. Two things change in the stream:
//
//   - WAL is handed over as soon as it arrives, not every flush interval.
//     While a write to a sync region is in flight, what arrives meanwhile
//     waits and goes in the next write: group commit, with no timer, so a
//     commit waits for at most two writes.
//   - A region's write completing wakes the stream, which is usually
//     blocked reading a server that sends nothing while its commits wait, to
//     report the new position at once.

// waker interrupts the stream's read when a sync region's durable position
// advances. A ring that comes while no read is in progress is kept for the
// next one, which then does not block.
type waker struct {
	mu     sync.Mutex
	cancel context.CancelFunc // the read in progress, or nil
	rung   bool
}

// ring wakes the stream.
func (w *waker) ring() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rung = true
	if w.cancel != nil {
		w.cancel()
	}
}

// arm registers the read about to start; it returns false, and the read
// should not start, when a ring came since the last read.
func (w *waker) arm(cancel context.CancelFunc) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rung {
		w.rung = false
		return false
	}
	w.cancel = cancel
	return true
}

// disarm ends the read and reports whether a ring interrupted it.
func (w *waker) disarm() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel = nil
	rung := w.rung
	w.rung = false
	return rung
}

// syncStep runs after every message or wake in zero-RPO mode: it hands the
// sync regions what arrived when no write to them is in flight, reports
// what they newly hold, and watches how long commits have waited.
func (ss *session) syncStep(ctx context.Context, now time.Time) error {
	if ss.written > ss.flushed && !ss.syncBusy() {
		// flush reports the position too; the zero time: nothing waits for
		// the heartbeat's interval when a commit may wait on it.
		return ss.flush(ctx, time.Time{})
	}
	if d := ss.durable(); d > ss.reported {
		if err := ss.sendStatus(ctx); err != nil {
			return err
		}
	}
	if ss.syncDurable() >= ss.received {
		if ss.s.SyncCaughtUp() {
			ss.s.Log.Info("the sync regions hold all WAL received again; commits no longer wait", "cluster", ss.s.Cluster)
		}
		return nil
	}
	if _, newly := ss.s.SyncStall(now); newly {
		ss.s.Log.Error("commits are waiting on drd: a sync region has not stored the WAL received within sync.timeout; they wait until it does (or take the region out of sync.regions and reload)",
			"cluster", ss.s.Cluster, "timeout", ss.s.Sync.Timeout.String(), "received", ss.received.String(), "sync_durable", ss.syncDurable().String())
	}
	return nil
}

// syncBusy reports whether a write is in flight to a region whose position
// gates the one reported (sync or required): the next write waits for it,
// so that a slower required region is not handed a chunk per WAL message.
func (ss *session) syncBusy() bool {
	for _, t := range ss.s.Targets {
		if (t.Sync || t.Required) && t.busy() {
			return true
		}
	}
	return false
}

// syncDurable is the position every sync region holds.
func (ss *session) syncDurable() LSN {
	var low LSN
	first := true
	for _, t := range ss.s.Targets {
		if !t.Sync {
			continue
		}
		if d, _, _ := t.Durable(); first || d < low {
			low, first = d, false
		}
	}
	return low
}
