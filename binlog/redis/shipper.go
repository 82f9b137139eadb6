package redis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// held is where one region's stream stands.
type held struct {
	end   Position // its newest history's end (End -1: none)
	bases []Base
	err   error
}

// load reads where every region stands, each bounded by loadTimeout and
// in parallel (a dead store must not hold the start of the others).
func (s *Shipper) load(ctx context.Context) []held {
	hs := make([]held, len(s.Regions))
	var wg sync.WaitGroup
	for i, r := range s.Regions {
		wg.Go(func() {
			lctx, cancel := context.WithTimeout(ctx, loadTimeout)
			defer cancel()
			h := held{end: Position{End: -1}}
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
func (s *Shipper) resumePoint(hs []held) (from Position, ends []Position, ok bool, err error) {
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
	resume, inProcess := from.ReplID != "", from.ReplID != ""
	if inProcess {
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

// received is one command off the stream.
type received struct {
	raw  []byte
	name string // lower case
	sub  string // lower case second argument (REPLCONF's, SELECT's)
	at   time.Time
	err  error
}

// stream reads commands in a goroutine and cuts them into chunks here.
func (s *Shipper) stream(ctx context.Context, c *conn, sync Sync, db int, prev string) error {
	in := make(chan received, 1024)
	done := make(chan struct{})
	defer close(done)
	go readStream(c.r, in, done)
	// ACK every second, as a replica does; until the first command arrives
	// every 100 ms: after a diskless full sync the primary starts the stream
	// on an ACK that reaches it once it has finished the transfer itself.
	ack := time.NewTicker(100 * time.Millisecond)
	defer ack.Stop()
	lastAck, streaming := time.Time{}, false
	flush := time.NewTimer(s.FlushInterval)
	defer flush.Stop()

	cut := cutter{replid: sync.ReplID, prev: prev, start: sync.Offset, offset: sync.Offset, db: db, startDB: db}
	for {
		select {
		case <-ctx.Done():
			// What was received is written before drd stops (a restart
			// would fetch it again only while the primary's backlog holds it).
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := s.flush(fctx, &cut); err != nil {
				s.Log.Warn("could not write the last received commands at stop", "cluster", s.Cluster, "err", err)
			}
			return ctx.Err()
		case r := <-in:
			if r.err != nil {
				return fmt.Errorf("replication stream: %w", r.err)
			}
			streaming = true
			if r.name == "replconf" && r.sub == "getack" {
				// Acknowledge what every region holds, not what drd received.
				if err := c.send("REPLCONF", "ACK", strconv.FormatInt(s.Durable().End, 10)); err != nil {
					return err
				}
			}
			if first := cut.add(r); first {
				s.mu.Lock()
				if s.pending.IsZero() {
					s.pending = r.at
				}
				s.mu.Unlock()
			}
			if cut.size >= maxChunk && !cut.inTxn {
				if err := s.flush(ctx, &cut); err != nil {
					return err
				}
			}
		case <-flush.C:
			if err := s.flush(ctx, &cut); err != nil {
				return err
			}
			flush.Reset(s.FlushInterval)
		case now := <-ack.C:
			if streaming && now.Sub(lastAck) < time.Second {
				continue
			}
			if err := c.send("REPLCONF", "ACK", strconv.FormatInt(s.Durable().End, 10)); err != nil {
				return err
			}
			lastAck = now
		}
	}
}

// readStream sends every command of the stream to out, then the error that
// ended it, until done is closed.
func readStream(r *bufio.Reader, out chan<- received, done <-chan struct{}) {
	for {
		raw, args, err := readCommand(r)
		rc := received{err: err, at: time.Now()}
		if err == nil {
			rc.raw, rc.name = raw, string(bytes.ToLower(args[0]))
			if len(args) > 1 && (rc.name == "replconf" || rc.name == "select") {
				rc.sub = string(bytes.ToLower(args[1]))
			}
		}
		select {
		case out <- rc:
		case <-done:
			return
		}
		if err != nil {
			return
		}
	}
}

// cutter gathers the stream into the next chunk.
type cutter struct {
	replid        string
	prev          string // the history the first chunk continues, if another
	start, offset int64  // the chunk covers (start, offset]
	cmds          []Command
	size          int
	inTxn         bool
	txnMS         int64
	db, startDB   int // selected now, and at the chunk's start
}

// add takes one command; it reports whether it is the first data command
// of the chunk.
func (k *cutter) add(r received) bool {
	k.offset += int64(len(r.raw))
	if r.name == "ping" || r.name == "replconf" {
		return false // keepalives and acknowledgements are not data
	}
	ms := r.at.UnixMilli()
	switch r.name {
	case "select":
		if db, err := strconv.Atoi(r.sub); err == nil {
			k.db = db
		}
	case "multi":
		k.inTxn, k.txnMS = true, ms
	case "exec", "discard":
		k.inTxn = false
		ms = k.txnMS
	}
	if k.inTxn {
		ms = k.txnMS
	}
	k.cmds = append(k.cmds, Command{MS: ms, End: k.offset, RESP: r.raw})
	k.size += len(r.raw)
	return len(k.cmds) == 1
}

// flush hands the chunk gathered so far to the regions (never inside
// MULTI/EXEC); each region's writer stores it.
func (s *Shipper) flush(ctx context.Context, k *cutter) error {
	if k.inTxn {
		return nil
	}
	if len(k.cmds) == 0 {
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
	h := ChunkHeader{ReplID: k.replid, Prev: k.prev, Start: k.start, End: k.offset, Commands: len(k.cmds), DB: k.startDB, EndDB: k.db,
		FirstMS: k.cmds[0].MS, LastMS: k.cmds[len(k.cmds)-1].MS}
	c := &chunk{h: h, plain: encodeChunk(h, k.cmds)}
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
	k.start, k.cmds, k.size, k.startDB, k.prev = k.offset, nil, 0, k.db, ""
	if err := s.hand(ctx, c); err != nil {
		return fmt.Errorf("chunk (%d, %d]: %w", h.Start, h.End, err)
	}
	return nil
}
