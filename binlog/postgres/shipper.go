package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/drkit/drkit/binlog"
	"github.com/drkit/drkit/storage"
)

// statusInterval is how often the shipper reports its position even when the
// server does not ask, well inside wal_sender_timeout (60 s by default).
const statusInterval = 10 * time.Second

// Shipper streams one cluster's WAL into its regions. It is a drd component.
type Shipper struct {
	Cluster       string
	DSN           string
	Slot          string
	FlushInterval time.Duration
	Targets       []*Target
	Log           *slog.Logger
	// Heartbeat names drd's heartbeat table, whose WAL alone may wait up to
	// its FlushInterval before it is shipped (see routine.go). Empty: all
	// WAL is flushed every FlushInterval.
	Heartbeat HeartbeatTable
	// Sync is the zero-RPO policy (syncrep.go); the zero value is off.
	Sync binlog.Sync

	// SyncState: how long commits have waited for the sync regions.
	binlog.SyncState
	// StandbyState: another drd streams from the slot, and this one waits
	// to take over (drkit_shipper_standby).
	binlog.StandbyState

	mu       sync.Mutex
	streamed bool
	// floor is set when the server no longer had the WAL the regions needed:
	// streaming then starts at the slot, and the gap is logged (and shown by
	// drctl verify).
	floor LSN
}

var (
	// errTimelineEnded: the server finished sending a historic timeline; the
	// next session continues on the following one.
	errTimelineEnded = errors.New("the server ended the timeline")
	// errWALRemoved: the server no longer has the WAL asked for.
	errWALRemoved = errors.New("the server has already removed the WAL needed")
)

// Name implements drd's component interface.
func (s *Shipper) Name() string { return "wal-shipper/" + s.Cluster }

// Ready reports ready once the shipper has streamed at least once.
func (s *Shipper) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.streamed {
		return errors.New("not streaming yet")
	}
	return nil
}

// Run streams until ctx ends, reconnecting with backoff after any failure: the
// server keeps unacknowledged WAL in the slot, so a failure loses nothing.
func (s *Shipper) Run(ctx context.Context) error {
	defer s.SyncReset() // a standby's commits wait on no one
	delay := time.Second
	for {
		began := time.Now()
		err := s.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errTimelineEnded) {
			s.Log.Info("timeline ended; following the next one", "cluster", s.Cluster, "detail", err)
			continue
		}
		if slotBusy(err) && storage.Fence(ctx) > 0 {
			// Under drd.ha this drd holds the cluster's lease: the slot's
			// reader is a drd that lost it (paused, partitioned), which the
			// server would keep until wal_sender_timeout. End it.
			ended, terr := s.endOtherReader(ctx)
			if ended {
				continue // the slot is free now
			}
			if terr != nil {
				s.Log.Warn("the slot is busy and its reader could not be ended (the role needs pg_signal_backend); waiting for the server's wal_sender_timeout", "cluster", s.Cluster, "slot", s.Slot, "err", terr)
			}
		}
		if slotBusy(err) {
			// Another drd ships this cluster: stand by, and take over within
			// binlog.StandbyRetry of its end, without an error every time.
			if !s.SetStandby(true) {
				s.Log.Info("another drd holds the slot; standing by to take over", "cluster", s.Cluster, "slot", s.Slot, "retry_every", binlog.StandbyRetry.String())
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(binlog.StandbyRetry):
			}
			continue
		}
		if time.Since(began) > time.Minute {
			delay = time.Second
		}
		s.Log.Error("WAL streaming stopped; reconnecting", "cluster", s.Cluster, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// session is one replication connection's state.
type session struct {
	s        *Shipper
	conn     *pgconn.PgConn
	segSize  uint64
	tli      uint32
	seg      Segment
	buf      []byte // the open segment
	written  uint64 // bytes of buf received, from its start
	flushed  uint64 // bytes of buf handed to the regions
	received LSN
	workers  []*sync.WaitGroup
	// scan follows the records received; pendingSince is when the oldest
	// byte not yet handed to the regions arrived.
	scan         *routineScanner
	pendingSince time.Time
	hbFiles      chan heartbeatFiles
	lostLogged   bool
	lineage      []TimelineBegin
	catch        *catchUp // regions that fell behind (lag.go)
	// reported is the flush position last sent to the server; wake
	// interrupts a read when a sync region's position advances.
	reported LSN
	wake     waker
}

func (s *Shipper) stream(ctx context.Context) error {
	conn, err := ConnectReplication(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	segSize, version, err := ServerSettings(ctx, conn)
	if err != nil {
		return err
	}
	info := ClusterInfo{Engine: "postgres", SystemIdentifier: sys.SystemID, WALSegmentSize: segSize, ServerVersion: version}
	restart, err := ensureSlot(ctx, conn, s.Slot)
	if err != nil {
		return err
	}
	lineage, history, err := s.lineage(ctx, conn, uint32(sys.Timeline))
	if err != nil {
		return err
	}
	start, perTarget, behind, err := s.resumePoint(ctx, lineage, segSize, restart)
	if err != nil {
		return err
	}
	tli := TimelineOf(lineage, uint64(start)/segSize, segSize)
	seg := SegmentOf(tli, start, segSize)
	start = seg.Start(segSize)

	// Workers write for the life of this session; a new session starts new ones
	// from what the stores hold.
	wctx, stopWorkers := context.WithCancel(context.Background())
	sess := &session{s: s, conn: conn, segSize: segSize, tli: tli, seg: seg, received: start,
		scan: newRoutineScanner(uint64(start), segSize), hbFiles: make(chan heartbeatFiles, 1),
		lineage: lineage, catch: &catchUp{open: seg}}
	sess.catch.ctx, sess.catch.stop = context.WithCancel(wctx)
	s.SetSyncPolicy(s.Sync)
	s.SyncReset() // what waited in an earlier session, the server sends again
	for _, t := range s.Targets {
		var wake func()
		var pace time.Duration
		switch {
		case s.Sync.On() && (t.Sync || t.Required):
			// Its position gates the one reported: the report must not
			// wait for the next WAL or timer.
			wake = sess.wake.ring
		case s.Sync.On():
			// It gates nothing: written every flush interval, as
			// without sync, not at every commit group.
			pace = s.FlushInterval
		}
		t.setSession(t.Sync && !s.Sync.Durable(), wake, pace)
	}
	if s.Heartbeat.Table != "" {
		go s.Heartbeat.watch(wctx, sess.hbFiles, s.Log)
	}
	for i, t := range s.Targets {
		sess.workers = append(sess.workers, t.start(wctx, s.Log, perTarget[i], TimelineOf(lineage, uint64(perTarget[i])/segSize, segSize)))
	}
	for i, t := range s.Targets {
		if behind[i] && sess.othersKeepUp(t) {
			sess.fallBehind(t, start)
		}
	}
	defer func() {
		if ctx.Err() != nil {
			// Stopping: let the regions catch up (briefly) so the next start
			// finds them current.
			sess.drain(10 * time.Second)
			stopWorkers()
			return
		}
		// A failure: reconnect at once. The next session re-sends from what
		// each region holds and the slot keeps the rest, so waiting for a dead
		// region here would only stall the healthy ones.
		sess.catch.halt()
		stopWorkers()
		now := time.Now()
		for _, t := range s.Targets {
			close(t.jobs)
			t.endSession(now)
		}
	}()
	// First in each region's own queue, so a dead region delays only itself:
	// the system check (nothing is written to a region holding another
	// system's WAL) and the timeline history.
	for _, t := range s.Targets {
		if err := t.enqueue(ctx, job{info: &info}); err != nil {
			return err
		}
		if history != nil {
			if err := t.enqueue(ctx, job{history: true, segName: history.FileName, data: history.Content}); err != nil {
				return err
			}
		}
		if err := t.compactLeftovers(ctx, segSize); err != nil {
			return err
		}
	}

	if err := pglogrepl.StartReplication(ctx, conn, s.Slot, start, pglogrepl.StartReplicationOptions{Timeline: int32(tli), Mode: pglogrepl.PhysicalReplication}); err != nil {
		return fmt.Errorf("START_REPLICATION SLOT %s at %s on timeline %d: %w", s.Slot, start, tli, err)
	}
	s.streamOpened(start, tli, seg, segSize)
	if s.Sync.On() {
		go s.watchSyncStandby(wctx)
	}
	err = sess.loop(ctx)
	if errors.Is(err, errWALRemoved) {
		s.mu.Lock()
		s.floor = restart
		s.mu.Unlock()
		s.Log.Error("the server no longer has the WAL the regions need: streaming resumes at the slot, leaving a gap that drctl verify reports; take a base backup",
			"cluster", s.Cluster, "needed_from", start.String(), "slot_restart", restart.String())
	}
	return err
}

func (s *Shipper) streamOpened(start LSN, tli uint32, seg Segment, segSize uint64) {
	s.Log.Info("streaming WAL", "cluster", s.Cluster, "slot", s.Slot, "from", start.String(), "timeline", tli, "segment", seg.Name(segSize))
	s.mu.Lock()
	s.streamed = true
	s.mu.Unlock()
	s.SetStandby(false)
}

// endOtherReader terminates the backend streaming from the slot and waits
// (briefly) until the slot is free.
func (s *Shipper) endOtherReader(ctx context.Context) (bool, error) {
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var pid *int32
	err = conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", s.Slot).Scan(&pid)
	if err != nil || pid == nil {
		return false, err // no row, or nobody streams any more
	}
	// Waits up to 5 s for the backend to exit.
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_terminate_backend($1, 5000)", *pid).Scan(&ok); err != nil {
		return false, err
	}
	if ok {
		s.Log.Info("ended the slot's reader, a drd that no longer holds the lease", "cluster", s.Cluster, "slot", s.Slot, "pid", *pid)
	}
	return ok, nil
}

// slotBusy reports whether err is the server refusing a slot another
// connection streams from (SQLSTATE 55006, object in use).
func slotBusy(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55006"
}

// slowAtReconnect: a region that has missed WAL for longer than this when the
// stream reconnects is not asked where its WAL ends (see resumeFrom).
const slowAtReconnect = time.Second

// resumeFrom is where a region's WAL ends along the lineage. A region whose store
// does not answer must not stop the others: it counts from the position this
// drd last saw it durable at or, after a restart, from the slot's restart point,
// and reports unreachable (it then starts the session behind, lag.go). Either
// position is at or below its real end (the slot is confirmed only up to what
// every required region holds), so it gets no gap.
func (t *Target) resumeFrom(ctx context.Context, lineage []TimelineBegin, segSize uint64, restart LSN) (end LSN, ok, unreachable bool, err error) {
	if known := t.durableOn(lineage); known > 0 && t.wasSlow() {
		// Behind in the last session (its store is slow or down, whether or
		// not its queue filled yet): asking it would hold every region's
		// reconnect for the timeout below.
		return known, true, true, nil
	}
	// Bounded: a dead store is retried by the SDK for minutes, and every other
	// region waits for this answer.
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	objs, err := t.Catalog.List(lctx, segSize)
	if err == nil {
		end, ok := DurableEndOnLineage(objs, lineage, segSize)
		left := ChunkedSegments(objs, lineage, segSize)
		t.mu.Lock()
		t.leftovers = left[:min(len(left), maxLeftovers)]
		t.mu.Unlock()
		return end, ok, false, nil
	}
	if ctx.Err() != nil {
		return 0, false, false, err
	}
	known := t.durableOn(lineage)
	if known == 0 {
		known = restart
	}
	slog.Warn("region unreachable at reconnect; resuming it from the last position known durable", "region", t.region(), "from", known.String(), "err", err)
	return known, known > 0, true, nil
}

// durableOn returns the position this drd last saw the region durable at if
// it lies on lineage (its timeline is there and it is not past that
// timeline's end), else 0: after a failover, WAL the old timeline had past the
// switch point is not the new primary's.
func (t *Target) durableOn(lineage []TimelineBegin) LSN {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, tb := range lineage {
		if tb.TLI != t.durableTLI {
			continue
		}
		if i+1 < len(lineage) && t.durable > lineage[i+1].Begin {
			return 0
		}
		return t.durable
	}
	return 0
}

// lineage returns the server's timeline lineage and, past timeline 1, its
// history file, which every region must store for a restore to follow the switch.
func (s *Shipper) lineage(ctx context.Context, conn *pgconn.PgConn, tli uint32) ([]TimelineBegin, *pglogrepl.TimelineHistoryResult, error) {
	if tli <= 1 {
		return []TimelineBegin{{TLI: tli}}, nil, nil
	}
	h, err := pglogrepl.TimelineHistory(ctx, conn, int32(tli))
	if err != nil {
		return nil, nil, fmt.Errorf("TIMELINE_HISTORY %d: %w", tli, err)
	}
	lineage, err := ParseHistory(bytesReader(h.Content), tli)
	if err != nil {
		return nil, nil, err
	}
	return lineage, &h, nil
}

// resumePoint returns where to stream from: the lowest durable end, along the
// server's lineage, among the regions (each resumes without a gap), or the
// slot's restart point when no region holds WAL of this lineage yet. Two kinds
// of region do not hold the start back, and begin the session behind (behind
// reports them) to catch up from the others: one whose store did not answer,
// while another did; and an optional one whose WAL ends before the slot's
// restart point, where the server no longer has what it lacks.
func (s *Shipper) resumePoint(ctx context.Context, lineage []TimelineBegin, segSize uint64, restart LSN) (start LSN, ends []LSN, behind []bool, err error) {
	ends, behind = make([]LSN, len(s.Targets)), make([]bool, len(s.Targets))
	unreachable := make([]bool, len(s.Targets))
	oks := make([]bool, len(s.Targets))
	anyAnswered := false
	for i, t := range s.Targets {
		ends[i], oks[i], unreachable[i], err = t.resumeFrom(ctx, lineage, segSize, restart)
		if err != nil {
			return 0, nil, nil, err
		}
		anyAnswered = anyAnswered || !unreachable[i]
	}
	found := false
	for i, t := range s.Targets {
		behind[i] = oks[i] && ((unreachable[i] && anyAnswered) || (!t.Required && ends[i] < restart))
		if !oks[i] || behind[i] {
			continue
		}
		if !found || ends[i] < start {
			start, found = ends[i], true
		}
	}
	s.mu.Lock()
	floor := s.floor
	s.mu.Unlock()
	switch {
	case !found:
		start = restart
	case floor > start:
		start = floor
	}
	for i := range behind {
		behind[i] = behind[i] || (oks[i] && ends[i] < start)
	}
	return start, ends, behind, nil
}

func (ss *session) loop(ctx context.Context) error {
	nextFlush := time.Now().Add(ss.s.FlushInterval)
	nextStatus := time.Now().Add(statusInterval)
	syncOn := ss.s.Sync.On()
	for {
		msg, err := ss.receive(ctx, nextFlush)
		if err != nil {
			return err
		}
		if msg != nil {
			if err := ss.handle(ctx, msg); err != nil {
				return err
			}
		}
		if syncOn {
			if err := ss.syncStep(ctx, time.Now()); err != nil {
				return err
			}
		}
		if now := time.Now(); !now.Before(nextFlush) {
			if err := ss.flush(ctx, now); err != nil {
				return err
			}
			nextFlush = now.Add(ss.s.FlushInterval)
			if !now.Before(nextStatus) {
				if err := ss.sendStatus(ctx); err != nil {
					return err
				}
				nextStatus = now.Add(statusInterval)
			}
		}
	}
}

// receive returns the server's next message, or nil when the deadline
// passed or a sync region's write completed (waker) first.
func (ss *session) receive(ctx context.Context, deadline time.Time) (pgproto3.BackendMessage, error) {
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if !ss.wake.arm(cancel) {
		return nil, nil
	}
	msg, err := ss.conn.ReceiveMessage(rctx)
	woken := ss.wake.disarm()
	switch {
	case err == nil:
		return msg, nil
	case ctx.Err() != nil:
		// First: pgconn reports an already cancelled context as a
		// timeout too, and the loop would spin.
		return nil, ctx.Err()
	case pgconn.Timeout(err), woken && errors.Is(err, context.Canceled):
		// pgconn interrupts a read by moving the socket's deadline, which
		// leaves the connection usable (a partly read message is kept).
		return nil, nil
	}
	return nil, fmt.Errorf("receive WAL: %w", err)
}

func (ss *session) handle(ctx context.Context, msg pgproto3.BackendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return nil
		}
		switch m.Data[0] {
		case pglogrepl.XLogDataByteID:
			x, err := pglogrepl.ParseXLogData(m.Data[1:])
			if err != nil {
				return fmt.Errorf("parse WAL message: %w", err)
			}
			return ss.write(ctx, x.WALStart, x.WALData)
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
			if err != nil {
				return fmt.Errorf("parse keepalive: %w", err)
			}
			if k.ReplyRequested {
				return ss.sendStatus(ctx)
			}
		}
	case *pgproto3.CopyDone:
		return fmt.Errorf("%w %d (a promotion or switchover happened)", errTimelineEnded, ss.tli)
	case *pgproto3.ErrorResponse:
		if strings.Contains(m.Message, "has already been removed") {
			return fmt.Errorf("%w: %s", errWALRemoved, m.Message)
		}
		return fmt.Errorf("server: %s (%s)", m.Message, m.Code)
	}
	return nil
}

// write places WAL received at pos into the open segment, sealing segments as
// they fill.
func (ss *session) write(ctx context.Context, pos LSN, data []byte) error {
	for len(data) > 0 {
		segStart := ss.seg.Start(ss.segSize)
		if pos >= segStart+LSN(ss.segSize) {
			if err := ss.seal(ctx); err != nil {
				return err
			}
			continue
		}
		if pos < segStart {
			return fmt.Errorf("the server sent WAL at %s, before the open segment %s", pos, ss.seg.Name(ss.segSize))
		}
		off := uint64(pos - segStart)
		if off > ss.written {
			return fmt.Errorf("the server skipped WAL: %s follows %s", pos, segStart+LSN(ss.written))
		}
		n := copy(ss.grow(off + uint64(len(data)))[off:], data)
		if end := off + uint64(n); end > ss.written {
			if ss.written == ss.flushed {
				ss.pendingSince = time.Now()
				if ss.s.Sync.On() {
					ss.s.SyncPending(ss.pendingSince)
				}
			}
			ss.scan.Feed(ss.buf[ss.written:end])
			ss.written = end
		}
		pos += LSN(n)
		data = data[n:]
		ss.received = max(ss.received, pos)
	}
	if ss.written == ss.segSize {
		return ss.seal(ctx)
	}
	return nil
}

// minSegBuf is the first allocation for an open segment's bytes.
const minSegBuf = 64 << 10

// grow returns the open segment's buffer extended to hold end bytes (at most
// the segment size). It grows by doubling rather than holding a whole segment
// from the start: an idle cluster writes a few kB a second, and 16 MiB per
// shipper was most of drd's memory. A new array leaves the old one to the
// chunks already queued from it, which are never written again.
func (ss *session) grow(end uint64) []byte {
	end = min(end, ss.segSize)
	if end <= uint64(len(ss.buf)) {
		return ss.buf
	}
	if end > uint64(cap(ss.buf)) {
		buf := make([]byte, len(ss.buf), min(ss.segSize, max(end, 2*uint64(cap(ss.buf)), minSegBuf)))
		copy(buf, ss.buf)
		ss.buf = buf
	}
	ss.buf = ss.buf[:end]
	return ss.buf
}

// seal hands the full segment to every region and opens the next one.
func (ss *session) seal(ctx context.Context) error {
	if ss.written != ss.segSize {
		return fmt.Errorf("segment %s ended after %d of %d bytes", ss.seg.Name(ss.segSize), ss.written, ss.segSize)
	}
	name := ss.seg.Name(ss.segSize)
	end := ss.seg.Start(ss.segSize) + LSN(ss.segSize)
	if ss.written > ss.flushed {
		// The segment's tail goes first as a chunk of its own: the region
		// then holds the segment before its whole upload, which runs beside
		// the next segment's chunks (Target.holds), and the commits in the
		// tail wait for neither.
		if err := ss.hand(ctx, job{seg: ss.seg, segName: name, from: ss.flushed, to: ss.written, data: ss.buf[ss.flushed:ss.written], end: end}); err != nil {
			return err
		}
	}
	if err := ss.hand(ctx, job{seg: ss.seg, segName: name, to: ss.segSize, data: ss.buf, whole: true, end: end}); err != nil {
		return err
	}
	ss.s.SyncHanded(uint64(end))
	ss.seg = Segment{TLI: ss.tli, No: ss.seg.No + 1}
	ss.catch.setOpen(ss.seg)
	ss.buf = nil // the old buffer belongs to the queued jobs now
	ss.written, ss.flushed = 0, 0
	ss.scan.Reset()
	return nil
}

// flush hands the bytes received since the last flush to every region as a
// partial chunk, then reports the position the required regions hold. WAL
// that holds only the heartbeat waits up to Heartbeat.FlushInterval; a zero
// now flushes whatever was received.
func (ss *session) flush(ctx context.Context, now time.Time) error {
	select {
	case f := <-ss.hbFiles:
		ss.scan.SetHeartbeat(f)
	default:
	}
	if ss.scan.broken && !ss.lostLogged {
		ss.lostLogged = true
		ss.s.Log.Warn("could not follow the WAL's records; heartbeat-only WAL ships every flush_interval until the next reconnect",
			"cluster", ss.s.Cluster, "near", LSN(ss.scan.pos).String())
	}
	if ss.written > ss.flushed && !ss.mayWait(now) {
		name := ss.seg.Name(ss.segSize)
		chunk := ss.buf[ss.flushed:ss.written] // never written again: WAL is append-only
		end := ss.seg.Start(ss.segSize) + LSN(ss.written)
		if err := ss.hand(ctx, job{seg: ss.seg, segName: name, from: ss.flushed, to: ss.written, data: chunk, end: end}); err != nil {
			return err
		}
		ss.s.SyncHanded(uint64(end))
		ss.flushed = ss.written
		ss.scan.Reset()
	} else {
		// No new WAL to take lagging regions back with: they rejoin with
		// the flushed bytes of the open segment they lack, or none.
		end := ss.seg.Start(ss.segSize) + LSN(ss.flushed)
		for _, t := range ss.s.Targets {
			if t.isLagging() {
				ss.rejoin(t, job{seg: ss.seg, segName: ss.seg.Name(ss.segSize), from: ss.flushed, to: ss.flushed, data: ss.buf[ss.flushed:ss.flushed], end: end})
			}
		}
	}
	return ss.sendStatus(ctx)
}

// mayWait reports whether what waits to be flushed is only routine WAL that
// arrived less than Heartbeat.FlushInterval ago.
func (ss *session) mayWait(now time.Time) bool {
	return !now.IsZero() && ss.scan.Routine() && now.Sub(ss.pendingSince) < ss.s.Heartbeat.FlushInterval
}

// durable is the position every required (and every sync) region holds.
func (ss *session) durable() LSN {
	var low LSN
	first := true
	for _, t := range ss.s.Targets {
		if !t.Required && !t.Sync {
			continue
		}
		d, _, _ := t.Durable()
		if first || d < low {
			low, first = d, false
		}
	}
	return low
}

// sendStatus confirms to the server only what every required region holds, so
// the slot keeps everything else.
func (ss *session) sendStatus(ctx context.Context) error {
	if ss.conn.IsClosed() {
		// pgconn closes a connection whose read was cancelled (drd stopping)
		// in a goroutine of its own: writing to it now would race with that.
		// The slot keeps what was not confirmed.
		return errors.New("send status: the replication connection is closed")
	}
	d := ss.durable()
	written := ss.received
	if ss.s.Sync.On() {
		// A server with synchronous_commit = remote_write waits for the
		// write position: it too must mean "in the sync regions".
		written = d
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, ss.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: written, WALFlushPosition: d, WALApplyPosition: d, ClientTime: time.Now(),
	})
	if err != nil {
		return fmt.Errorf("send status: %w", err)
	}
	ss.reported = d
	return nil
}

// drain flushes the open segment's last bytes and waits (up to limit) for the
// regions to write what is queued, so that a clean stop leaves the regions
// current and the next start resumes at the end.
func (ss *session) drain(limit time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if ss.written > ss.flushed {
		_ = ss.flush(ctx, time.Time{})
	}
	ss.catch.halt()
	for _, t := range ss.s.Targets {
		close(t.jobs)
	}
	done := make(chan struct{})
	go func() {
		for _, w := range ss.workers {
			w.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
		_ = ss.sendStatus(ctx)
	case <-ctx.Done():
		ss.s.Log.Warn("stopping with WAL still queued for a region; the slot keeps it for the next start", "cluster", ss.s.Cluster)
	}
}

// ConnectReplication opens a physical replication connection to dsn.
func ConnectReplication(ctx context.Context, dsn string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse the cluster's dsn: %w", err)
	}
	cfg.RuntimeParams["replication"] = "true"
	cfg.RuntimeParams["application_name"] = "drkit"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect for replication (the role needs REPLICATION and a pg_hba.conf replication line): %w", err)
	}
	return conn, nil
}

// ServerSettings reads wal_segment_size and server_version over a replication
// connection (which accepts SHOW).
func ServerSettings(ctx context.Context, conn *pgconn.PgConn) (segSize uint64, version string, err error) {
	show := func(name string) (string, error) {
		res, err := conn.Exec(ctx, "SHOW "+name).ReadAll()
		if err != nil {
			return "", fmt.Errorf("SHOW %s: %w", name, err)
		}
		if len(res) == 0 || len(res[0].Rows) == 0 {
			return "", fmt.Errorf("SHOW %s returned nothing", name)
		}
		return string(res[0].Rows[0][0]), nil
	}
	raw, err := show("wal_segment_size")
	if err != nil {
		return 0, "", err
	}
	if segSize, err = parseSize(raw); err != nil {
		return 0, "", err
	}
	version, err = show("server_version")
	return segSize, version, err
}

// parseSize parses PostgreSQL's "16MB" / "1GB" / "512kB".
func parseSize(s string) (uint64, error) {
	units := []struct {
		suffix string
		mult   uint64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseUint(num, 10, 64)
			if err != nil {
				break
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("unexpected wal_segment_size %q", s)
}

// ensureSlot creates the physical slot if missing (reserving WAL at once) and
// returns its restart position.
func ensureSlot(ctx context.Context, conn *pgconn.PgConn, slot string) (LSN, error) {
	_, err := conn.Exec(ctx, fmt.Sprintf("CREATE_REPLICATION_SLOT %s PHYSICAL RESERVE_WAL", slot)).ReadAll()
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42710") { // duplicate_object
		return 0, fmt.Errorf("create replication slot %s: %w", slot, err)
	}
	res, err := conn.Exec(ctx, "READ_REPLICATION_SLOT "+slot).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("READ_REPLICATION_SLOT %s (PostgreSQL 15 or newer is needed): %w", slot, err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 || res[0].Rows[0][1] == nil {
		return 0, fmt.Errorf("slot %s has no restart position", slot)
	}
	return ParseLSN(string(res[0].Rows[0][1]))
}

// Progress implements binlog.Shipper.
func (s *Shipper) Progress(now time.Time) (cluster, engine string, regions []binlog.RegionProgress) {
	for _, t := range s.Targets {
		if !t.isStarted() {
			continue // not streaming yet: no fact to report
		}
		_, at, _ := t.Durable()
		regions = append(regions, binlog.RegionProgress{Region: t.region(), ShippedAt: at, Exposure: t.Exposure(now), CatchingUp: t.isLagging()})
	}
	return s.Cluster, "postgres", regions
}
