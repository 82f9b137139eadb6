package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"

	"github.com/drkit/drkit/binlog"
	"github.com/drkit/drkit/storage"
)

const (
	// maxBatch cuts a chunk early when this many bytes of transactions wait.
	// 8 MiB rather than 16: a catch-up's last chunk, compressed and stored
	// after the stream has ended, is half as large, and a slow region's
	// queue (queueDepth batches) holds at most 128 MiB.
	maxBatch = 8 << 20
	// queueDepth is how many batches may wait for a slow region before the
	// stream stops reading (the server keeps the binlog meanwhile).
	queueDepth = 16
	// idleFlush is how long a stream reading a backlog may pause before its
	// tail is flushed.
	idleFlush = 20 * time.Millisecond
)

// Shipper streams one cluster's binlog into its regions. It is a drd component.
type Shipper struct {
	Cluster string
	// DSN is a go-sql-driver DSN (user:pass@tcp(host:port)/); the user needs
	// REPLICATION SLAVE and REPLICATION CLIENT (BINLOG MONITOR on MariaDB).
	DSN string
	// ServerID is the replica id drd registers with; it must differ from every
	// server's in the replication topology.
	ServerID      uint32
	FlushInterval time.Duration
	Targets       []*Target
	Log           *slog.Logger
	// Heartbeat names drd's heartbeat table: a batch holding only its
	// transactions may wait up to its FlushInterval (see HeartbeatTable).
	Heartbeat HeartbeatTable
	// Sync is the zero-RPO policy (semisync.go); the zero value is off.
	Sync binlog.Sync

	// SyncState: how long commits have waited for the sync regions.
	binlog.SyncState
	// StandbyState: another drd dumps the binlog with this ServerID, and
	// this one waits to take over (drkit_shipper_standby).
	binlog.StandbyState

	mu       sync.Mutex
	streamed bool
	pos      Pos // after the last transaction handed to the targets
	version  string
	queues   []chan *batch
	// preparing bounds the batches encoded ahead at once.
	preparing chan struct{}
	// began is where the first session started: what a region that was
	// empty and unreachable then catches up from (lag.go).
	began Pos
	// catchWG counts the catch-ups of regions that fell behind (lag.go).
	catchWG sync.WaitGroup
}

// batch is the transactions cut from the stream at one flush.
type batch struct {
	start         Pos
	end           Pos // after its last transaction
	txns          []*Txn
	serverVersion string
	// heartbeats: every transaction is a heartbeat; since: when the first arrived.
	heartbeats bool
	since      time.Time

	// In zero-RPO mode: ack is the position to acknowledge once every sync
	// region holds the batch; syncLeft counts the sync regions still
	// writing it, and the last one sends the batch to synced.
	ack      *AckPos
	syncLeft atomic.Int32
	synced   chan<- *batch
	mark     uint64 // the batch's number among those the pump handed

	// The batch encoded as the chunk after start, once for every region.
	encodeOnce sync.Once
	enc        *encodedChunk
	encErr     error
}

// encoded returns the batch encoded as the chunk after its start, encoding
// it on first use.
func (b *batch) encoded() (*encodedChunk, error) {
	b.encodeOnce.Do(func() { b.enc, b.encErr = encode(b.start, b.txns, b.serverVersion) })
	return b.enc, b.encErr
}

// HeartbeatTable is drd's heartbeat table. drd writes it every second on a
// cluster with replicas; on an idle database that alone made drd put a binlog
// chunk into every region every second (most of an idle drd's CPU, and a PUT
// per second per region on S3). Those transactions are not what the exposure
// window protects, so a batch of nothing else waits up to FlushInterval for
// real writes to ship with; a user's transaction ships within the shipper's
// flush interval as always. The server keeps the binlog meanwhile, and drd
// resumes from the regions' position, so waiting loses nothing.
type HeartbeatTable struct {
	DB, Table     string
	FlushInterval time.Duration
}

// NewHeartbeatTable names the heartbeat table [database.]table; without a
// database it is in the database of dsn, the connection that writes it.
func NewHeartbeatTable(table, dsn string, wait time.Duration) HeartbeatTable {
	db, name, ok := strings.Cut(table, ".")
	if !ok {
		name, db = db, ""
		if c, err := driver.ParseDSN(dsn); err == nil {
			db = c.DBName
		}
	}
	return HeartbeatTable{DB: db, Table: name, FlushInterval: wait}
}

// add appends tx to the batch.
func (b *batch) add(tx *Txn, now time.Time) {
	if len(b.txns) == 0 {
		b.heartbeats, b.since = true, now
	}
	if tx.Ack != nil {
		b.ack = tx.Ack
	}
	b.txns = append(b.txns, tx)
	b.heartbeats = b.heartbeats && tx.Heartbeat
}

// mayWait reports whether the batch holds only heartbeats that arrived less
// than wait ago.
func (b *batch) mayWait(now time.Time, wait time.Duration) bool {
	return len(b.txns) > 0 && b.heartbeats && now.Sub(b.since) < wait
}

// Name implements drd's component interface.
func (s *Shipper) Name() string { return "binlog-shipper/" + s.Cluster }

// Ready reports ready once the shipper has streamed at least once.
func (s *Shipper) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.streamed {
		return errors.New("not streaming yet")
	}
	return nil
}

// Run ships until ctx ends. It reconnects forever with backoff, from the
// position after the last whole transaction it received, so a disconnect, a
// server restart or a failover to another primary with the same GTID history
// neither loses nor repeats a transaction.
//
// Each Run starts from what the regions hold, not from what an earlier Run
// handed its writers: under drd.ha a Run ends when the lease is lost, its
// writers drop what they had queued, and a later Run (the lease regained)
// resuming after those transactions would leave a gap no chunk shows.
func (s *Shipper) Run(ctx context.Context) error {
	s.mu.Lock()
	s.pos, s.began = nil, nil
	s.mu.Unlock()
	s.SyncReset()
	defer s.SyncReset() // a standby's commits wait on no one
	for _, t := range s.Targets {
		t.log = s.Log
		t.forget()
	}
	g, ctx := errgroup.WithContext(ctx)
	s.preparing = make(chan struct{}, runtime.GOMAXPROCS(0))
	s.queues = make([]chan *batch, len(s.Targets))
	for i, t := range s.Targets {
		q := make(chan *batch, queueDepth)
		s.queues[i] = q
		g.Go(func() error {
			for b := range q {
				if err := t.write(ctx, b); err != nil {
					return nil // ctx ended
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer func() {
			s.catchWG.Wait() // they queue too; ctx has ended them
			for _, q := range s.queues {
				close(q)
			}
		}()
		s.loop(ctx)
		return nil
	})
	return g.Wait()
}

func (s *Shipper) loop(ctx context.Context) {
	delay := time.Second
	for {
		began := time.Now()
		err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		var other *errAnotherDrd
		if errors.As(err, &other) {
			// MariaDB has no slot to refuse a second reader: two drd would
			// each kill the other's dump (same server_id) and write two
			// chunk histories. Stand by until the other one is gone.
			if !s.SetStandby(true) {
				s.Log.Info("another drd streams this cluster's binlog; standing by to take over", "cluster", s.Cluster, "server_id", s.ServerID, "other", other.host, "retry_every", binlog.StandbyRetry.String())
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(binlog.StandbyRetry):
			}
			continue
		}
		if time.Since(began) > time.Minute {
			delay = time.Second
		}
		s.Log.Error("binlog streaming stopped; reconnecting", "cluster", s.Cluster, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// session is one replication connection, from setup to its first error.
func (s *Shipper) session(ctx context.Context) error {
	cfg, err := driver.ParseDSN(s.DSN)
	if err != nil {
		return fmt.Errorf("cluster %s: dsn: %w", s.Cluster, err)
	}
	srv, err := checkServer(ctx, s.DSN, s.ServerID)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", s.Cluster, err)
	}
	if s.Sync.On() {
		if err := s.checkSemiSync(ctx); err != nil {
			return fmt.Errorf("cluster %s: %w", s.Cluster, err)
		}
	}
	if srv.otherDump != "" {
		if storage.Fence(ctx) == 0 {
			return &errAnotherDrd{host: srv.otherDump}
		}
		// Under drd.ha this drd holds the cluster's lease: the other
		// reader is a drd that lost it (paused, partitioned), whose dump the
		// server ends when this one registers with the same server_id. Its
		// late chunks lose to this one's (fence, catalog.go).
		s.Log.Info("replacing the binlog dump of a drd that no longer holds the lease", "cluster", s.Cluster, "other", srv.otherDump)
	}
	start, err := s.startPos(ctx, srv)
	if err != nil {
		return err
	}
	d, err := openDumpWith(ctx, cfg, s.ServerID, start, s.Sync.On())
	if err != nil {
		return fmt.Errorf("cluster %s: start binlog dump from %q: %w", s.Cluster, start, err)
	}
	s.mu.Lock()
	s.streamed, s.pos, s.version = true, start, srv.version
	s.mu.Unlock()
	s.SetStandby(false)
	s.Log.Info("binlog streaming", "cluster", s.Cluster, "from", start.String(), "server", srv.version)
	if s.Sync.On() {
		wctx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		go s.watchSemiSyncServer(wctx)
	}
	txns := make(chan streamed, 1024)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		read(d, &assembler{heartbeat: s.Heartbeat, semiSync: d.semiSync}, txns, done)
	}()
	defer func() {
		close(done)
		d.close() // ends a read in progress
		wg.Wait()
	}()
	return s.pump(ctx, txns, start, srv.binlogPos, d.ack)
}

// streamed is what the reader hands the pump: a whole transaction, or the
// error that ended the stream.
type streamed struct {
	tx  *Txn
	err error
}

// read assembles the events of d into transactions and sends them to out
// until the stream fails (its error is the last thing sent) or done closes.
// It runs beside the pump so that reading the socket never waits for the
// pump's flushes, and the pump gets a transaction, not an event, at a time.
func read(d *dumpConn, a *assembler, out chan<- streamed, done <-chan struct{}) {
	send := func(it streamed) bool {
		select {
		case out <- it:
			return true
		case <-done:
			return false
		}
	}
	for {
		ev, err := d.next()
		if err != nil {
			send(streamed{err: err})
			return
		}
		if d.ackReq {
			a.askedAck(ev)
		}
		tx, err := a.feed(ev)
		if err != nil {
			send(streamed{err: err})
			return
		}
		if tx != nil && !send(streamed{tx: tx}) {
			return
		}
	}
}

// pump takes the stream's transactions and hands a batch to the regions
// every flush interval (or when it grows large). backlog is the server's
// position when the session connected: once the stream has read up to it,
// the backlog's tail is handed over at once.
//
// In zero-RPO mode a transaction is handed over as soon as it arrives when no
// batch is on its way to the sync regions, else it joins the next batch, cut
// when that one is stored (group commit); ack acknowledges each stored
// batch's position to the server (semisync.go).
func (s *Shipper) pump(ctx context.Context, stream <-chan streamed, start, backlog Pos, ack func(AckPos) error) error {
	b := &batch{start: start.Clone(), serverVersion: s.version}
	pos, size := start.Clone(), 0
	interval := s.FlushInterval
	if interval <= 0 {
		interval = time.Second
	}
	deadline := time.Now().Add(interval)
	// catchingUp: the stream is reading a backlog (a session's start, or a
	// batch cut for size). A backlog's tail is flushed as soon as the stream
	// reaches the server's position at connect, or else goes idle, instead of
	// at the interval: a catch-up ends durable at once, while steady traffic
	// still gets one chunk per interval. Idleness alone also ended the
	// catch-up at a pause inside the backlog, and its tail then waited for
	// the interval.
	catchingUp := true
	if len(backlog) == 0 || pos.Covers(backlog) {
		backlog = nil // nothing to catch up
	}
	w := &waiter{}
	defer w.reset()
	syncOn := s.Sync.On()
	var synced chan *batch // stays nil, never ready, when sync is off
	var inflight *batch    // the batch the sync regions are storing
	var marks uint64
	if syncOn {
		synced = make(chan *batch, 64)
	}
	flush := func() error {
		if len(b.txns) > 0 {
			b.end = pos.Clone()
			if syncOn && s.awaitSync(b, synced) {
				inflight = b
				marks++
				b.mark = marks
				s.SyncHanded(b.mark)
			}
			if err := s.hand(ctx, b); err != nil {
				return err
			}
			s.mu.Lock()
			s.pos = pos.Clone()
			s.mu.Unlock()
		}
		b = &batch{start: pos.Clone(), serverVersion: s.version}
		size, deadline = 0, time.Now().Add(interval)
		w.reset()
		return nil
	}
	until := func() time.Time {
		if idle := time.Now().Add(idleFlush); catchingUp && len(b.txns) > 0 && idle.Before(deadline) {
			return idle
		}
		return deadline
	}
	for {
		var it streamed
		select {
		case it = <-stream:
		case done := <-synced:
			if done.ack != nil {
				if err := ack(*done.ack); err != nil {
					return err
				}
			}
			s.SyncStored(done.mark)
			s.watchSync(time.Now())
			if done != inflight {
				continue
			}
			inflight = nil
			if len(b.txns) > 0 {
				if err := flush(); err != nil {
					return err
				}
			}
			continue
		case <-w.get(until):
			if syncOn {
				s.watchSync(time.Now())
			}
			quiet := w.quiet()
			w.reset()
			now := time.Now()
			if !quiet && now.Before(deadline) {
				continue // transactions came during the idle wait: the backlog goes on
			}
			catchingUp = catchingUp && (len(b.txns) == 0 || backlog != nil) // a pause inside a known backlog ends nothing
			if !syncOn && b.mayWait(now, s.Heartbeat.FlushInterval) {
				deadline = now.Add(interval)
				continue
			}
			if err := flush(); err != nil {
				return err
			}
			continue
		case <-ctx.Done():
			it.err = ctx.Err()
		}
		if it.err != nil {
			// Hand over what is whole; the open transaction comes again.
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return it.err
		}
		w.events++
		tx := it.tx
		if catchingUp && len(b.txns) == 0 {
			w.reset() // a batch opens: wait for silence, not for the deadline
		}
		if len(b.txns) > 0 && !sameBytes(tx.FDE, b.txns[0].FDE) {
			if err := flush(); err != nil { // one format description per chunk
				return err
			}
		}
		now := time.Now()
		b.add(tx, now)
		pos.Advance(tx.GTID)
		size += tx.Size
		if backlog != nil && pos.Covers(backlog) {
			// The backlog is read: its tail is durable now, and what follows
			// is steady traffic.
			backlog, catchingUp = nil, false
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if syncOn {
			s.SyncPending(now)
			if inflight == nil {
				if err := flush(); err != nil {
					return err
				}
				continue
			}
		}
		if size >= maxBatch || (now.After(deadline) && !b.mayWait(now, s.Heartbeat.FlushInterval)) {
			catchingUp = catchingUp || size >= maxBatch
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// waiter is the pump's alarm: it rings at the flush deadline or, while a
// backlog is read, after idleFlush of silence. One timer serves a whole such
// period rather than one per transaction, and silence is told by counting
// transactions, so no clock is read per transaction for it either.
type waiter struct {
	timer *time.Timer
	armed bool
	// events counts the transactions received; seen is the count when the
	// timer was set.
	events, seen uint64
}

// get returns the alarm's channel, setting it for until() if it is not set.
func (w *waiter) get(until func() time.Time) <-chan time.Time {
	if !w.armed {
		d := time.Until(until())
		if w.timer == nil {
			w.timer = time.NewTimer(d)
		} else {
			w.timer.Reset(d)
		}
		w.armed, w.seen = true, w.events
	}
	return w.timer.C
}

// reset unsets the alarm: the moment to act has changed.
func (w *waiter) reset() {
	if w.armed {
		w.timer.Stop()
		w.armed = false
	}
}

// quiet reports whether no transaction arrived since the alarm was set.
func (w *waiter) quiet() bool { return w.events == w.seen }

// hand gives b to every region's queue. A region whose queue is full falls
// behind alone while another keeps up (lag.go); for the last region keeping
// up, the stream waits.
func (s *Shipper) hand(ctx context.Context, b *batch) error {
	ahead := true
	for i, q := range s.queues {
		t := s.Targets[i]
		switch {
		case s.rejoin(i, b): // lagging: taken back, or missed b
			continue
		case t.offer(q, b):
		case s.othersKeepUp(t):
			s.fallBehind(ctx, i, b)
			continue
		default:
			t.mu.Lock()
			t.queuedLocked(b)
			t.mu.Unlock()
			select {
			case q <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		ahead = t.enqueued() <= prepareAhead && ahead
	}
	if ahead {
		go s.prepare(b, s.preparing) // this Run's slots: a later Run makes its own
	}
	return nil
}

// prepareAhead is how many batches a region may have waiting for the next
// one to be encoded and compressed as soon as it is cut. Until then the
// region's writer does it when it gets there. Ahead, the work runs beside the
// stream and the uploads (a catch-up's chunks compress on every core instead
// of one after another in the writer); bounded, because a prepared batch holds
// its chunk and compressed copy until every region stored it.
const prepareAhead = 2

// prepare encodes b and compresses it at every region's level, at most
// GOMAXPROCS batches at a time.
func (s *Shipper) prepare(b *batch, slots chan struct{}) {
	slots <- struct{}{}
	defer func() { <-slots }()
	e, err := b.encoded()
	if err != nil {
		return // the writers meet it again and report it
	}
	for _, t := range s.Targets {
		_ = t.Catalog.Pipeline.Compress(e.plain) // likewise
	}
}

// startPos is where a session starts: after the last transaction handed over
// in this process, else the oldest position any region holds, else (every
// region empty) the server's current position.
func (s *Shipper) startPos(ctx context.Context, srv serverInfo) (Pos, error) {
	s.mu.Lock()
	pos := s.pos
	s.version = srv.version
	s.mu.Unlock()
	if pos != nil {
		return pos, nil
	}
	var start Pos
	var unread []int
	var firstErr error
	loaded := 0
	for i, t := range s.Targets {
		if t.isLagging() {
			continue // its catch-up reads it (an earlier session failed)
		}
		// Bounded: a dead store is retried by the SDK for minutes, and every
		// other region waits for this answer.
		lctx, cancel := context.WithTimeout(ctx, loadTimeout)
		err := t.load(lctx, s.clusterInfo())
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			unread, firstErr = append(unread, i), cmp.Or(firstErr, err)
			s.Log.Warn("region unreadable at start; it falls behind and catches up once it answers", "cluster", s.Cluster, "region", t.region(), "err", err)
			continue
		}
		loaded++
		p, _, _ := t.Position()
		switch {
		case len(p) == 0: // empty region (Position returns a copy, never nil)
		case start == nil:
			start = p
		default:
			start = Min(start, p)
		}
	}
	if loaded == 0 {
		return nil, cmp.Or(firstErr, errors.New("no region's store answers"))
	}
	if start == nil {
		start = srv.binlogPos
	}
	s.mu.Lock()
	s.began = start.Clone()
	s.mu.Unlock()
	for _, i := range unread {
		s.fallBehind(ctx, i, nil)
	}
	return start, nil
}

// loadTimeout bounds reading where a region stands.
const loadTimeout = 10 * time.Second

// clusterInfo is what every region records of the server it holds.
func (s *Shipper) clusterInfo() ClusterInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ClusterInfo{Engine: "mysql", Flavor: "mariadb", ServerVersion: s.version}
}

type serverInfo struct {
	version   string
	binlogPos Pos
	// otherDump is the host of a reader registered with drd's server_id.
	otherDump string
}

// checkServer verifies the server can be shipped from, naming the setting to
// change when it cannot.
func checkServer(ctx context.Context, dsn string, ownID uint32) (serverInfo, error) {
	var si serverInfo
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return si, err
	}
	defer db.Close()
	var logBin int
	var format, pos string
	var serverID uint32
	err = db.QueryRowContext(ctx, "SELECT @@version, @@log_bin, @@binlog_format, @@gtid_binlog_pos, @@server_id").
		Scan(&si.version, &logBin, &format, &pos, &serverID)
	if err != nil {
		return si, fmt.Errorf("query server settings: %w", err)
	}
	switch {
	case !strings.Contains(si.version, "MariaDB"):
		return si, fmt.Errorf("server %s is MySQL; drkit ships MariaDB binlogs only so far (MySQL 8 GTID sets are not supported yet)", si.version)
	case logBin != 1:
		return si, errors.New("the server's binary log is off: start it with log_bin (and binlog_format=ROW)")
	case !strings.EqualFold(format, "ROW"):
		return si, fmt.Errorf("binlog_format is %s: set binlog_format=ROW, the only format a replay reproduces exactly", format)
	case serverID == ownID:
		return si, fmt.Errorf("the server's server_id is %d, the same as drd's: give the cluster another server_id", ownID)
	}
	if si.binlogPos, err = ParsePos(pos); err != nil {
		return si, err
	}
	si.otherDump, err = dumpingAs(ctx, db, ownID)
	return si, err
}

// dumpingAs returns the host of a replica registered on the server with
// server_id id (SHOW SLAVE HOSTS: every binlog dump that registered), ""
// when there is none.
func dumpingAs(ctx context.Context, db *sql.DB, id uint32) (string, error) {
	rows, err := db.QueryContext(ctx, "SHOW SLAVE HOSTS")
	if err != nil {
		return "", fmt.Errorf("SHOW SLAVE HOSTS (drd's user needs REPLICATION MASTER ADMIN or SUPER to see other readers): %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		var sid, host string
		for i, c := range cols {
			switch strings.ToLower(c) {
			case "server_id":
				sid = string(vals[i])
			case "host":
				host = string(vals[i])
			}
		}
		if sid == fmt.Sprint(id) {
			if host == "" {
				host = "(no host reported)"
			}
			return host, nil
		}
	}
	return "", rows.Err()
}

// errAnotherDrd: a replica with drd's server_id already dumps the binlog.
type errAnotherDrd struct{ host string }

func (e *errAnotherDrd) Error() string {
	return "another reader with drd's server_id dumps the binlog (from " + e.host + ")"
}

// Progress implements binlog.Shipper.
func (s *Shipper) Progress(now time.Time) (cluster, engine string, regions []binlog.RegionProgress) {
	for _, t := range s.Targets {
		t.mu.Lock()
		ready, at := t.ready, t.at
		t.mu.Unlock()
		if !ready {
			continue // not set up yet: no fact to report
		}
		regions = append(regions, binlog.RegionProgress{Region: t.region(), ShippedAt: at, Exposure: t.Exposure(now), CatchingUp: t.isLagging()})
	}
	return s.Cluster, "mysql", regions
}
