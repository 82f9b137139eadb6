package postgres

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/binlog"
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
	ss.s.SyncStored(uint64(ss.durable()))
	switch _, newly, recovered := ss.s.SyncCheck(now); {
	case newly:
		ss.s.Log.Error("commits are waiting on drd: a sync or required region has not stored the WAL received within sync.timeout; they wait until it does (or take the region out of sync.regions and required_regions and restart drd)",
			"cluster", ss.s.Cluster, "timeout", ss.s.Sync.Timeout.String(), "received", ss.received.String(), "reported", ss.reported.String())
	case recovered:
		ss.s.Log.Info("the regions hold the WAL received again; commits no longer wait", "cluster", ss.s.Cluster)
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

// serverPoll is how often drd asks the server about its synchronous
// replication in zero-RPO mode.
const serverPoll = 5 * time.Second

// watchSyncStandby asks the server, once a session streams and then every
// serverPoll, whether its synchronous replication holds commits for drd and
// how many it holds now (binlog.ServerSync). The first answer also warns when
// it does not make commits wait for drd: drd is not a synchronous standby
// (synchronous_standby_names does not name drkit), or another standby's
// acknowledgement alone can release a commit (FIRST n or ANY n with another
// name), when a returned commit may be missing from the regions. The server
// is the judge: pg_stat_replication's sync_state.
func (s *Shipper) watchSyncStandby(ctx context.Context) {
	binlog.Sleep(ctx, 2*time.Second) // the walsender's row is up to date
	if ctx.Err() != nil {
		return
	}
	// What a session that ended last said is stale: no view until asked again.
	defer s.SetSyncServer(binlog.ServerSync{})
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		s.Log.Warn("could not check the server's synchronous standbys", "cluster", s.Cluster, "err", err)
		return
	}
	defer conn.Close(context.Background())
	for first := true; ; first = false {
		drd, others, waiting, err := syncStandbys(ctx, conn)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if first {
				s.Log.Warn("could not check the server's synchronous standbys (drd's role needs pg_monitor)", "cluster", s.Cluster, "err", err)
				return
			}
			s.Log.Debug("could not poll the server's synchronous replication", "cluster", s.Cluster, "err", err)
		default:
			s.SetSyncServer(binlog.ServerSync{At: time.Now(), Synchronous: drd == "sync" || drd == "quorum", Waiting: waiting})
			if first {
				s.warnSyncStandby(drd, others)
			}
		}
		binlog.Sleep(ctx, serverPoll)
	}
}

// syncStandbys reads drd's sync_state (empty: drd does not stream), the
// other standbys that may release a commit, and how many backends wait for
// synchronous replication.
func syncStandbys(ctx context.Context, conn *pgx.Conn) (drd string, others []string, waiting int, err error) {
	rows, err := conn.Query(ctx, "SELECT application_name, sync_state FROM pg_stat_replication")
	if err != nil {
		return "", nil, 0, err
	}
	for rows.Next() {
		var name, state string
		if rows.Scan(&name, &state) != nil {
			continue
		}
		switch {
		case name == "drkit":
			drd = state
		case state == "sync" || state == "quorum":
			others = append(others, name+" ("+state+")")
		}
	}
	if err := rows.Err(); err != nil {
		return "", nil, 0, err
	}
	err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'").Scan(&waiting)
	return drd, others, waiting, err
}

func (s *Shipper) warnSyncStandby(drd string, others []string) {
	switch {
	case drd == "async" || drd == "potential":
		s.Log.Error("sync.mode is on but the server does not wait for drd (its sync_state is "+drd+"): put drkit in synchronous_standby_names, or commits are not held until the regions have them",
			"cluster", s.Cluster, "mode", string(s.Sync.Mode))
	case len(others) > 0:
		s.Log.Warn("another standby's acknowledgement may release a commit before drd's regions hold it: list drkit alone in synchronous_standby_names (or FIRST/ANY with every name required) for zero RPO into the regions",
			"cluster", s.Cluster, "other_sync_standbys", strings.Join(others, ", "))
	}
}
