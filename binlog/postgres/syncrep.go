package postgres

import (
	"context"
	"errors"
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
// A status query a second costs the server nothing that shows, and a fall
// back to asynchronous commits is then in the metric within a second.
const serverPoll = time.Second

// watchSyncStandby asks the server, once a session streams and then every
// serverPoll, whether its synchronous replication holds commits for drd and
// how many it holds now (binlog.ServerSync). It logs when the server stops
// waiting for drd (ERROR) and when it waits again (INFO). The first answer
// also warns when it does not make commits wait for drd: drd is not a
// synchronous standby (synchronous_standby_names does not name drkit), or
// another standby's acknowledgement alone can release a commit (FIRST n or
// ANY n with another name), when a returned commit may be missing from the
// regions. The server is the judge: pg_stat_replication's sync_state.
func (s *Shipper) watchSyncStandby(ctx context.Context) {
	binlog.Sleep(ctx, 2*time.Second) // the walsender's row is up to date
	// What a session that ended last said is stale: no view until asked again.
	defer s.SetSyncServer(binlog.ServerSync{})
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	warned, answered := false, false
	for ctx.Err() == nil {
		drd, others, waiting, err := s.askSyncStandbys(ctx, &conn)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// Not known: no view (the metric goes absent) rather than
			// the last one, which may hide a fall.
			s.SetSyncServer(binlog.ServerSync{})
			if !warned {
				s.Log.Warn("could not ask the server about its synchronous standbys; retrying every "+serverPoll.String(), "cluster", s.Cluster, "err", err)
				warned = true
			}
		default:
			fell, back := s.SetSyncServer(binlog.ServerSync{At: time.Now(), Synchronous: drd == "sync" || drd == "quorum", Waiting: waiting})
			switch {
			case !answered:
				s.warnSyncStandby(drd, others)
			case fell:
				s.Log.Error("the server no longer waits for drd (its sync_state is "+drd+"): commits return without the regions, not zero-RPO; is drkit still in synchronous_standby_names?",
					"cluster", s.Cluster)
			case back:
				s.Log.Info("the server waits for drd again (sync_state "+drd+")", "cluster", s.Cluster)
			}
			answered, warned = true, false
		}
		binlog.Sleep(ctx, serverPoll)
	}
}

// askSyncStandbys runs syncStandbys on *conn, connecting first if *conn is
// nil; after an error it closes *conn, so the next call reconnects.
func (s *Shipper) askSyncStandbys(ctx context.Context, conn **pgx.Conn) (drd string, others []string, waiting int, err error) {
	if *conn == nil {
		if *conn, err = pgx.Connect(ctx, s.DSN); err != nil {
			return "", nil, 0, err
		}
	}
	drd, others, waiting, err = syncStandbys(ctx, *conn)
	if err != nil {
		(*conn).Close(context.Background())
		*conn = nil
	}
	return drd, others, waiting, err
}

// syncStandbys reads drd's sync_state, the other standbys that may release a
// commit, and how many backends wait for synchronous replication. A role
// without pg_monitor (pg_read_all_stats) sees NULL in other sessions'
// columns: an error, not "drd is not synchronous".
func syncStandbys(ctx context.Context, conn *pgx.Conn) (drd string, others []string, waiting int, err error) {
	rows, err := conn.Query(ctx, "SELECT application_name, sync_state FROM pg_stat_replication")
	if err != nil {
		return "", nil, 0, err
	}
	found := false
	for rows.Next() {
		var name, state *string
		if err := rows.Scan(&name, &state); err != nil {
			rows.Close()
			return "", nil, 0, err
		}
		if state == nil {
			rows.Close()
			return "", nil, 0, errors.New("pg_stat_replication hides the standbys' sync_state from drd's role: grant it pg_monitor")
		}
		switch {
		case name != nil && *name == "drkit":
			drd, found = *state, true
		case *state == "sync" || *state == "quorum":
			others = append(others, deref(name)+" ("+*state+")")
		}
	}
	if err := rows.Err(); err != nil {
		return "", nil, 0, err
	}
	if !found {
		return "", nil, 0, errors.New("drd's walsender (application_name drkit) is not in pg_stat_replication")
	}
	err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'").Scan(&waiting)
	return drd, others, waiting, err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
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
