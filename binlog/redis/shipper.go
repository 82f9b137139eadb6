package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/drkit/drkit/binlog"
	"github.com/drkit/drkit/storage"
)

// maxChunk cuts a chunk early under heavy writes, so that one chunk stays a
// bounded PUT and a bounded read for a restore.
const maxChunk = 8 << 20

// Shipper captures one Redis primary's replication stream into regions.
type Shipper struct {
	Cluster string
	// DSN is the primary's redis:// or rediss:// URL.
	DSN string
	// Regions are the ship_to regions; every chunk is written to each.
	Regions []*storage.Region
	// FlushInterval is how long received commands may wait before they are
	// written (default 1s).
	FlushInterval time.Duration
	Log           *slog.Logger
	// SizingCheck, if set, says what is too small on the primary for the
	// stream to survive a drd restart without a full resync (its backlog,
	// its replica output buffer); it is logged once, as a warning.
	SizingCheck func(ctx context.Context) error
	// Required names the regions whose durable position REPLCONF ACK
	// reports (the primary's WAIT and INFO); empty: every region.
	Required []string

	mu        sync.Mutex
	streaming bool
	ready     error // why not streaming
	targets   []*target
	// handed is where the last chunk handed to the regions ends (ReplID
	// empty before the first session), handedDB the database selected
	// there: a new session in this process continues from it.
	handed   Position
	handedDB int
	// idle is the stream offset received when the last flush found no
	// command waiting: a region holding handed holds everything to it.
	idle    int64
	pending time.Time // when the oldest command not yet handed arrived
	catchWG sync.WaitGroup
}

// Name implements lifecycle.Component.
func (s *Shipper) Name() string { return "redis-stream/" + s.Cluster }

// Ready reports why the shipper is not streaming (nil when it is).
func (s *Shipper) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.streaming:
		return nil
	case s.ready != nil:
		return s.ready
	}
	return errors.New("not connected yet")
}

// Durable returns the position every required region holds of the current
// history (End 0 while one holds none of it).
func (s *Shipper) Durable() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := Position{ReplID: s.handed.ReplID, End: -1}
	for _, t := range s.targets {
		if !t.required {
			continue
		}
		end := int64(0)
		if t.end.ReplID == s.handed.ReplID {
			end = t.end.End
			if end == s.handed.End && !t.lagging && len(t.since) == 0 {
				end = max(end, s.idle)
			}
		}
		if p.End < 0 || end < p.End {
			p.End, p.LastMS = end, t.end.LastMS
		}
	}
	p.End = max(p.End, 0)
	return p
}

// Progress implements binlog.Shipper.
func (s *Shipper) Progress(now time.Time) (cluster, engine string, regions []binlog.RegionProgress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.targets {
		if !t.ok {
			continue
		}
		oldest := t.oldest()
		if oldest.IsZero() || !s.pending.IsZero() && s.pending.Before(oldest) {
			oldest = s.pending
		}
		var exposure time.Duration
		if !oldest.IsZero() {
			exposure = now.Sub(oldest)
		}
		regions = append(regions, binlog.RegionProgress{Region: t.r.Name, ShippedAt: t.at, Exposure: exposure, CatchingUp: t.lagging})
	}
	return s.Cluster, "redis", regions
}

// Run streams until ctx ends, reconnecting after failures. At the end the
// regions' writers finish what was queued, for at most drainTimeout.
func (s *Shipper) Run(ctx context.Context) error {
	if s.FlushInterval <= 0 {
		s.FlushInterval = time.Second
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var writers sync.WaitGroup
	s.mu.Lock()
	s.targets = make([]*target, len(s.Regions))
	for i, r := range s.Regions {
		t := &target{r: r, required: len(s.Required) == 0 || slices.Contains(s.Required, r.Name), q: make(chan *chunk, queueDepth), end: Position{End: -1}}
		s.targets[i] = t
		writers.Go(func() { s.write(wctx, t) })
	}
	s.mu.Unlock()
	defer func() {
		// The regions keeping up store what was handed to them, for at
		// most drainTimeout; a lagging one gets it from them at the next
		// start (its catch-up).
		s.drain(context.Background(), ctx, drainTimeout)
		cancel()
		s.catchWG.Wait()
		for _, t := range s.targets {
			close(t.q)
		}
		writers.Wait()
	}()
	if s.SizingCheck != nil {
		if err := s.SizingCheck(ctx); err != nil {
			s.Log.Warn("the primary's replication settings may force full resyncs of drd's stream", "cluster", s.Cluster, "err", err)
		}
	}
	for {
		err := s.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.mu.Lock()
		s.streaming, s.ready = false, err
		s.mu.Unlock()
		s.Log.Warn("the Redis replication stream stopped; reconnecting", "cluster", s.Cluster, "err", err)
		binlog.Sleep(ctx, time.Second)
	}
}

// drainTimeout bounds how long a stopping drd waits for the regions to
// store what it received.
const drainTimeout = 10 * time.Second

// standing is where one region's stream stands.
type standing struct {
	end   Position // its newest history's end (End -1: none)
	bases []Base
	err   error
}

// load reads where every region stands, each bounded by loadTimeout and
// in parallel (a dead store must not hold the start of the others).
func (s *Shipper) load(ctx context.Context) []standing {
	hs := make([]standing, len(s.Regions))
	var wg sync.WaitGroup
	for i, r := range s.Regions {
		wg.Go(func() {
			lctx, cancel := context.WithTimeout(ctx, loadTimeout)
			defer cancel()
			h := standing{end: Position{End: -1}}
			if h.err = ensureInfo(lctx, []*storage.Region{r}, s.Cluster); h.err != nil {
				hs[i] = h
				return
			}
			p, ok, err := (&Catalog{Pipeline: r.Pipeline, Cluster: s.Cluster}).End(lctx)
			if h.err = err; err != nil {
				hs[i] = h
				return
			}
			if ok {
				h.end = p
			}
			h.bases, _, h.err = ListBases(lctx, r.Pipeline, s.Cluster)
			hs[i] = h
		})
	}
	wg.Wait()
	return hs
}

// resumePoint is where the newest history any region holds ends: the
// furthest a region holds of it (its chunks' end, or a base of it newer
// than them). Each region's own end is returned beside it: a region behind
// catches up from the others. ok is false when no region holds anything of
// the cluster; err is set when no region answers.
func (s *Shipper) resumePoint(hs []standing) (from Position, ends []Position, ok bool, err error) {
	newestAt := int64(-1)
	answered := 0
	for _, h := range hs {
		if h.err != nil {
			continue
		}
		answered++
		if h.end.End >= 0 && h.end.LastMS > newestAt {
			from, newestAt = h.end, h.end.LastMS
		}
		for _, b := range h.bases {
			if b.Time.UnixMilli() > newestAt {
				from, newestAt = Position{ReplID: b.ReplID, End: b.Offset, LastMS: b.Time.UnixMilli()}, b.Time.UnixMilli()
			}
		}
	}
	if answered == 0 {
		var errs []error
		for i, h := range hs {
			errs = append(errs, fmt.Errorf("region %s: %w", s.Regions[i].Name, h.err))
		}
		return Position{}, nil, false, fmt.Errorf("no region's store answers: %w", errors.Join(errs...))
	}
	ends = make([]Position, len(hs))
	for i, h := range hs {
		ends[i] = Position{End: -1}
		if h.err != nil || newestAt < 0 {
			continue
		}
		if h.end.ReplID == from.ReplID {
			ends[i] = h.end
		}
		// A base newer than the stream (a full resync after which nothing
		// was written yet) is where the region stands.
		for _, b := range h.bases {
			if b.ReplID == from.ReplID && b.Offset > ends[i].End {
				ends[i] = Position{ReplID: b.ReplID, End: b.Offset, LastMS: b.Time.UnixMilli()}
			}
		}
		if ends[i].End > from.End {
			from = ends[i]
		}
	}
	return from, ends, newestAt >= 0, nil
}

// session is one connection: handshake, an RDB if the primary sends one,
// then the stream until an error.
func (s *Shipper) session(ctx context.Context) error {
	s.mu.Lock()
	from, db := s.handed, s.handedDB
	s.mu.Unlock()
	resume := from.ReplID != "" // a session before this one in this process
	if resume {
		s.drain(ctx, ctx, drainTimeout)
	} else {
		var err error
		if from, resume, err = s.start(ctx); err != nil {
			return err
		}
	}
	c, err := dial(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	replid, offset := "", int64(0)
	if resume {
		replid, offset = from.ReplID, from.End
	}
	sync, err := c.psync(ctx, replid, offset, false)
	if err != nil {
		return err
	}
	// The primary answers +FULLRESYNC when its RDB child starts (after any
	// diskless-sync delay): the snapshot holds the data of this moment.
	began := time.Now().UTC()
	if sync.Full && resume && sync.ReplID == from.ReplID && sync.Offset < from.End {
		// The primary restarted from an older save and kept its replication
		// id: its history forks below what the regions hold. Storing it under
		// the same id would mix the two in one history.
		return fmt.Errorf("the primary's history (%s) now goes on from offset %d, below the %d the regions hold: it restarted from an older save and what it wrote after that save is lost on it. drd does not mix the two histories: move the regions' %s/stream/%s folder aside (restores of it stay possible from there) and drd starts a new base",
			sync.ReplID, sync.Offset, from.End, s.Cluster, sync.ReplID)
	}
	prev := ""
	if sync.Full {
		if resume {
			s.Log.Warn("the primary could not continue the stored stream (its backlog no longer holds it, or it is another server): a full resync starts a new base; restores do not cross from the stored history to it",
				"cluster", s.Cluster, "stored_replid", from.ReplID, "stored_offset", from.End, "replid", sync.ReplID, "offset", sync.Offset)
		}
		if err := s.storeBase(ctx, c, sync, began); err != nil {
			return err
		}
		db = -1
	} else {
		s.Log.Info("continuing the stored stream", "cluster", s.Cluster, "replid", sync.ReplID, "offset", sync.Offset)
		if db < 0 {
			db = s.selectedAt(ctx, from) // -1 still where no chunk ends there
		}
		if sync.ReplID != from.ReplID {
			prev = from.ReplID // a failover: the new primary continues the history
			s.Log.Info("the primary continues the stored history under a new replication id (a failover)", "cluster", s.Cluster, "from", from.ReplID, "replid", sync.ReplID, "offset", sync.Offset)
		}
	}
	s.mu.Lock()
	s.streaming, s.ready = true, nil
	for _, t := range s.targets {
		t.ok = true
	}
	s.mu.Unlock()
	return s.stream(ctx, c, sync, db, prev)
}

// start reads where the regions stand, when drd starts: the stream resumes
// from the furthest any region holds; a region behind it, or one that does
// not answer, falls behind and catches up from the others.
func (s *Shipper) start(ctx context.Context) (Position, bool, error) {
	hs := s.load(ctx)
	from, ends, ok, err := s.resumePoint(hs)
	if err != nil {
		return Position{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, t := range s.targets {
		t.end = ends[i]
		switch {
		case hs[i].err != nil:
			t.ok = true
			s.fallBehind(ctx, t, fmt.Sprintf("its store did not answer at start: %v", hs[i].err))
		case ok && (ends[i].ReplID != from.ReplID || ends[i].End < from.End):
			t.ok = true
			s.fallBehind(ctx, t, "it holds less of the stream than another region")
		}
	}
	if ok {
		s.handed, s.handedDB, s.idle = from, -1, from.End
	}
	return from, ok, nil
}

// storeBase stores the RDB of a full resync in the regions that keep up;
// a region that fails to falls behind (its catch-up copies the base).
func (s *Shipper) storeBase(ctx context.Context, c *conn, sync Sync, began time.Time) error {
	s.mu.Lock()
	var active []*target
	for _, t := range s.targets {
		if !t.lagging {
			active = append(active, t)
		}
	}
	s.mu.Unlock()
	if len(active) == 0 {
		return errors.New("no region takes the stream yet: waiting for a catch-up")
	}
	regions := make([]*storage.Region, len(active))
	for i, t := range active {
		regions[i] = t.r
	}
	b, failed, err := storeBase(ctx, regions, s.Cluster, sync, began, c.readRDB)
	if err != nil {
		return err
	}
	s.Log.Info("stored a base backup from a full resync", "cluster", s.Cluster, "backup", b.ID, "replid", b.ReplID, "offset", b.Offset, "bytes", b.RDBSize)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, t := range active {
		if failed[i] != nil {
			s.fallBehind(ctx, t, fmt.Sprintf("it could not store the base backup: %v", failed[i]))
			continue
		}
		t.end, t.at = Position{ReplID: sync.ReplID, End: sync.Offset, LastMS: began.UnixMilli()}, now
	}
	s.handed, s.handedDB, s.idle = Position{ReplID: sync.ReplID, End: sync.Offset, LastMS: began.UnixMilli()}, -1, sync.Offset
	return nil
}

// selectedAt returns the database selected at the end of the stored chunk
// that ends at p (-1 when no region can say).
func (s *Shipper) selectedAt(ctx context.Context, p Position) int {
	for _, r := range s.Regions {
		cat := &Catalog{Pipeline: r.Pipeline, Cluster: s.Cluster}
		refs, err := cat.List(ctx)
		if err != nil {
			continue
		}
		for _, ref := range refs {
			if ref.ReplID == p.ReplID && ref.End == p.End {
				if cr, closer, err := cat.Open(ctx, ref); err == nil {
					closer.Close()
					return cr.Header.EndDB
				}
			}
		}
	}
	return -1
}

// stream reads the command stream and cuts it into chunks, all in this
// goroutine: reads wait at most until the next flush or ACK is due (a read
// deadline), and the commands are scanned in the read buffer and appended
// to the chunk as they arrive. The socket wakes drd only once streamLowat
// bytes wait (SO_RCVLOWAT) or readTick has passed, and a flush first
// takes whatever has arrived.
// Handing each command to another goroutine woke a thread twice per TCP
// segment and cost the primary 30 % of its throughput on two cores;
// waking once per segment still cost it 15 % (bench-redis).
func (s *Shipper) stream(ctx context.Context, c *conn, sync Sync, db int, prev string) error {
	st := &streamer{s: s, c: c, buf: make([]byte, 0, 256<<10),
		cut: cutter{replid: sync.ReplID, prev: prev, start: sync.Offset, offset: sync.Offset, db: db, startDB: db}}
	setLowat(c.nc, streamLowat)
	// ACK every second, as a replica does; until the first command arrives
	// every 100 ms: after a diskless full sync the primary starts the stream
	// on an ACK that reaches it once it has finished the transfer itself.
	ackEvery := 100 * time.Millisecond
	now := time.Now()
	nextFlush, nextAck := now.Add(s.FlushInterval), now.Add(ackEvery)
	for {
		if ctx.Err() != nil {
			// What was received is written before drd stops (a restart
			// would fetch it again only while the primary's backlog holds it).
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
			defer cancel()
			if err := s.flush(fctx, &st.cut); err != nil {
				s.Log.Warn("could not hand the last received commands to the regions at stop", "cluster", s.Cluster, "err", err)
			}
			return ctx.Err()
		}
		now = time.Now()
		if !now.Before(nextFlush) {
			// What waits below the low-water mark is part of this flush.
			if err := st.read(ctx, now.Add(time.Millisecond)); err != nil {
				return err
			}
			if err := s.flush(ctx, &st.cut); err != nil {
				return err
			}
			nextFlush = now.Add(s.FlushInterval)
		}
		if !now.Before(nextAck) {
			// Acknowledge what every required region holds, not what drd
			// received.
			if err := c.send("REPLCONF", "ACK", strconv.FormatInt(s.Durable().End, 10)); err != nil {
				return err
			}
			if st.got {
				ackEvery = time.Second
			}
			nextAck = now.Add(ackEvery)
		}
		next := now.Add(readTick)
		for _, t := range []time.Time{nextFlush, nextAck} {
			if t.Before(next) {
				next = t
			}
		}
		if err := st.read(ctx, next); err != nil {
			return err
		}
	}
}

const (
	// streamLowat is the socket's low-water mark while streaming.
	streamLowat = 64 << 10
	// readTick is how long stream may wait below the low-water mark before
	// drd reads it: a command's time is when drd read it, so this is how
	// much later than its write a restore to a time may place it.
	readTick = 10 * time.Millisecond
)

// streamer is a stream's read side.
type streamer struct {
	s        *Shipper
	c        *conn
	buf      []byte // bytes read and not yet taken: part of a command
	cut      cutter
	deadline time.Time
	got      bool // a command arrived
}

// read reads once, waiting until deadline at most, and takes the whole
// commands read into the chunk.
func (st *streamer) read(ctx context.Context, deadline time.Time) error {
	if !deadline.Equal(st.deadline) {
		st.deadline = deadline
		if err := st.c.nc.SetReadDeadline(deadline); err != nil {
			return err
		}
	}
	if len(st.buf) == cap(st.buf) {
		st.buf = append(st.buf, make([]byte, cap(st.buf))...)[:len(st.buf)] // a command larger than the buffer
	}
	n, err := st.c.r.Read(st.buf[len(st.buf):cap(st.buf)])
	st.buf = st.buf[:len(st.buf)+n]
	if n > 0 {
		used, got, perr := st.s.take(st.c, &st.cut, st.buf, time.Now())
		if perr != nil {
			return perr
		}
		st.got = st.got || got
		st.buf = st.buf[:copy(st.buf, st.buf[used:])]
		if st.cut.size >= maxChunk && !st.cut.inTxn {
			if err := st.s.flush(ctx, &st.cut); err != nil {
				return err
			}
		}
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("replication stream: %w", err)
	}
	return nil
}

// take adds the whole commands at the start of buf, which arrived at at,
// to the chunk; it returns how many bytes they take and whether there was
// one. GETACK is answered here.
func (s *Shipper) take(c *conn, k *cutter, buf []byte, at time.Time) (int, bool, error) {
	used := 0
	for used < len(buf) {
		sc, err := scanCommand(buf[used:])
		if err != nil {
			return used, used > 0, err
		}
		if sc.n == 0 {
			break
		}
		if bytes.EqualFold(sc.name, []byte("replconf")) && bytes.EqualFold(sc.sub, []byte("getack")) {
			if err := c.send("REPLCONF", "ACK", strconv.FormatInt(s.Durable().End, 10)); err != nil {
				return used, true, err
			}
		}
		if k.add(buf[used:used+sc.n], sc, at) {
			s.mu.Lock()
			if s.pending.IsZero() {
				s.pending = at
			}
			s.mu.Unlock()
		}
		used += sc.n
	}
	return used, used > 0, nil
}

// cutter gathers the stream into the next chunk's records.
type cutter struct {
	replid          string
	prev            string // the history the first chunk continues, if another
	start, offset   int64  // the chunk covers (start, offset]
	body            []byte // its records (appendRecord)
	n               int    // commands in body
	firstMS, lastMS int64
	size            int
	inTxn           bool
	txnMS           int64
	db, startDB     int // selected now, and at the chunk's start
}

// add takes one command; it reports whether it is the first data command
// of the chunk.
func (k *cutter) add(raw []byte, sc scanned, at time.Time) bool {
	k.offset += int64(len(raw))
	switch {
	case bytes.EqualFold(sc.name, []byte("ping")), bytes.EqualFold(sc.name, []byte("replconf")):
		return false // keepalives and acknowledgements are not data
	case bytes.EqualFold(sc.name, []byte("select")):
		if db, err := strconv.Atoi(string(sc.sub)); err == nil {
			k.db = db
		}
	case bytes.EqualFold(sc.name, []byte("multi")):
		k.inTxn, k.txnMS = true, at.UnixMilli()
	case bytes.EqualFold(sc.name, []byte("exec")), bytes.EqualFold(sc.name, []byte("discard")):
		k.inTxn = false
		at = time.UnixMilli(k.txnMS)
	}
	ms := at.UnixMilli()
	if k.inTxn {
		ms = k.txnMS
	}
	k.body = appendRecord(k.body, ms, k.offset-k.start, raw)
	if k.n == 0 {
		k.firstMS = ms
	}
	k.n++
	k.lastMS, k.size = ms, k.size+len(raw)
	return k.n == 1
}

// flush hands the chunk gathered so far to the regions (never inside
// MULTI/EXEC); each region's writer stores it.
func (s *Shipper) flush(ctx context.Context, k *cutter) error {
	if k.inTxn {
		return nil
	}
	if k.n == 0 {
		// Nothing but keepalives since the last chunk, if anything: a
		// region that holds every chunk holds everything drd received, as
		// of now (ShippedAt of an idle stream keeps up with the clock, as
		// for the other engines).
		s.mu.Lock()
		defer s.mu.Unlock()
		if k.start == s.handed.End {
			s.idle = k.offset
		}
		now := time.Now()
		for _, t := range s.targets {
			if t.ok && t.healthy && !t.lagging && len(t.since) == 0 {
				t.at = now
			}
		}
		return nil
	}
	h := ChunkHeader{ReplID: k.replid, Prev: k.prev, Start: k.start, End: k.offset, Commands: k.n, DB: k.startDB, EndDB: k.db,
		FirstMS: k.firstMS, LastMS: k.lastMS, SealMS: time.Now().UnixMilli()}
	c := &chunk{h: h, plain: chunkBytes(h, k.body)}
	s.mu.Lock()
	c.since = s.pending
	if c.since.IsZero() {
		c.since = time.UnixMilli(h.FirstMS)
	}
	// Handed before it is queued: a catch-up that reaches the previous
	// chunk's end while this one is being handed must not take its region
	// back without it.
	s.handed, s.handedDB, s.idle = Position{ReplID: h.ReplID, End: h.End, LastMS: h.LastMS}, k.db, h.End
	s.pending = time.Time{}
	s.mu.Unlock()
	// chunkBytes copied the body: its buffer gathers the next chunk.
	k.start, k.body, k.n, k.size, k.startDB, k.prev = k.offset, k.body[:0], 0, 0, k.db, ""
	if err := s.hand(ctx, c); err != nil {
		return fmt.Errorf("chunk (%d, %d]: %w", h.Start, h.End, err)
	}
	return nil
}
