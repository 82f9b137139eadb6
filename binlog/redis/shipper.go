package redis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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

	mu        sync.Mutex
	streaming bool
	ready     error     // why not streaming
	durable   Position  // what every region holds
	shipped   []shipped // per region
	pending   time.Time // when the oldest command not yet durable arrived
}

// shipped is one region's last durable write.
type shipped struct {
	at      time.Time
	ok      bool // reported: the shipper has streamed
	healthy bool // the last write succeeded
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

// Durable returns the position every region holds.
func (s *Shipper) Durable() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durable
}

// Progress implements binlog.Shipper.
func (s *Shipper) Progress(now time.Time) (cluster, engine string, regions []binlog.RegionProgress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.Regions {
		if i >= len(s.shipped) || !s.shipped[i].ok {
			continue
		}
		var exposure time.Duration
		if !s.pending.IsZero() {
			exposure = now.Sub(s.pending)
		}
		regions = append(regions, binlog.RegionProgress{Region: r.Name, ShippedAt: s.shipped[i].at, Exposure: exposure})
	}
	return s.Cluster, "redis", regions
}

// Run streams until ctx ends, reconnecting after failures.
func (s *Shipper) Run(ctx context.Context) error {
	if s.FlushInterval <= 0 {
		s.FlushInterval = time.Second
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	s.mu.Lock()
	s.shipped = make([]shipped, len(s.Regions))
	s.mu.Unlock()
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

// resumePoint is where the stored stream of the newest history ends: in
// each region the end of its chunks, or, where it holds none of that
// history yet, its oldest base of it (so that every stored base rolls
// forward); the smallest over the regions (a region ahead skips what it
// holds). ok is false when no region holds anything of the cluster.
func (s *Shipper) resumePoint(ctx context.Context) (Position, bool, error) {
	type held struct {
		end   Position
		bases []Base
	}
	hs := make([]held, len(s.Regions))
	var newest Position
	newestAt := int64(-1)
	for i, r := range s.Regions {
		p, ok, err := (&Catalog{Pipeline: r.Pipeline, Cluster: s.Cluster}).End(ctx)
		if err != nil {
			return Position{}, false, err
		}
		if ok {
			hs[i].end = p
			if p.LastMS > newestAt {
				newest, newestAt = p, p.LastMS
			}
		}
		bases, _, err := ListBases(ctx, r.Pipeline, s.Cluster)
		if err != nil {
			return Position{}, false, err
		}
		hs[i].bases = bases
		for _, b := range bases {
			if b.Time.UnixMilli() > newestAt {
				newest, newestAt = Position{ReplID: b.ReplID, End: b.Offset, LastMS: b.Time.UnixMilli()}, b.Time.UnixMilli()
			}
		}
	}
	if newestAt < 0 {
		return Position{}, false, nil
	}
	from := Position{ReplID: newest.ReplID, End: -1}
	for _, h := range hs {
		end := int64(-1)
		if h.end.ReplID == newest.ReplID {
			end = h.end.End
			// A base newer than the stream (a full resync after which nothing
			// was written yet) is where the region stands: asking for the
			// stream before it would cost another full resync.
			for _, b := range h.bases {
				if b.ReplID == newest.ReplID && b.Offset > end {
					end = b.Offset
				}
			}
		} else {
			for _, b := range h.bases {
				if b.ReplID == newest.ReplID && (end < 0 || b.Offset < end) {
					end = b.Offset
				}
			}
		}
		if end >= 0 && (from.End < 0 || end < from.End) {
			from.End = end
		}
	}
	return from, from.End >= 0, nil
}

// session is one connection: handshake, an RDB if the primary sends one,
// then the stream until an error.
func (s *Shipper) session(ctx context.Context) error {
	if err := ensureInfo(ctx, s.Regions, s.Cluster); err != nil {
		return err
	}
	from, resume, err := s.resumePoint(ctx)
	if err != nil {
		return err
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
	if sync.Full {
		if resume {
			s.Log.Warn("the primary could not continue the stored stream (its backlog no longer holds it, or it is another server): a full resync starts a new base; restores do not cross from the stored history to it",
				"cluster", s.Cluster, "stored_replid", from.ReplID, "stored_offset", from.End, "replid", sync.ReplID, "offset", sync.Offset)
		}
		b, err := storeBase(ctx, s.Regions, s.Cluster, sync, began, c.readRDB)
		if err != nil {
			return err
		}
		s.Log.Info("stored a base backup from a full resync", "cluster", s.Cluster, "backup", b.ID, "replid", b.ReplID, "offset", b.Offset, "bytes", b.RDBSize)
	} else {
		s.Log.Info("continuing the stored stream", "cluster", s.Cluster, "replid", sync.ReplID, "offset", sync.Offset)
	}
	s.mu.Lock()
	s.streaming, s.ready, s.durable = true, nil, Position{ReplID: sync.ReplID, End: sync.Offset}
	now := time.Now()
	for i := range s.shipped {
		s.shipped[i].ok, s.shipped[i].healthy = true, true
		if sync.Full {
			s.shipped[i].at = now // the base just stored holds everything to its offset
		}
	}
	s.mu.Unlock()
	db, prev := -1, ""
	if !sync.Full {
		db = s.selectedAt(ctx, from)
		if sync.ReplID != from.ReplID {
			prev = from.ReplID // a failover: the new primary continues the history
			s.Log.Info("the primary continues the stored history under a new replication id (a failover)", "cluster", s.Cluster, "from", from.ReplID, "replid", sync.ReplID, "offset", sync.Offset)
		}
	}
	return s.stream(ctx, c, sync, db, prev)
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

// flush writes the chunk gathered so far to every region (never inside
// MULTI/EXEC) and, once each holds it, makes it the durable position.
func (s *Shipper) flush(ctx context.Context, k *cutter) error {
	if k.inTxn {
		return nil
	}
	if len(k.cmds) == 0 {
		// Nothing but keepalives since the last chunk, if anything: the
		// regions hold everything drd received, as of now (ShippedAt of an
		// idle stream keeps up with the clock, as for the other engines).
		s.mu.Lock()
		s.durable.End = k.offset
		now := time.Now()
		for i := range s.shipped {
			if s.shipped[i].ok && s.shipped[i].healthy {
				s.shipped[i].at = now
			}
		}
		s.mu.Unlock()
		return nil
	}
	h := ChunkHeader{ReplID: k.replid, Prev: k.prev, Start: k.start, End: k.offset, Commands: len(k.cmds), DB: k.startDB, EndDB: k.db,
		FirstMS: k.cmds[0].MS, LastMS: k.cmds[len(k.cmds)-1].MS}
	plain := encodeChunk(h, k.cmds)
	errs := make([]error, len(s.Regions))
	var wg sync.WaitGroup
	for i, r := range s.Regions {
		wg.Go(func() { errs[i] = (&Catalog{Pipeline: r.Pipeline, Cluster: s.Cluster}).Put(ctx, h, plain) })
	}
	wg.Wait()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, err := range errs {
		s.shipped[i].healthy = err == nil
		if err == nil {
			s.shipped[i].at = now
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("chunk (%d, %d]: %w", h.Start, h.End, err)
	}
	s.durable = Position{ReplID: k.replid, End: k.offset, LastMS: h.LastMS}
	s.pending = time.Time{}
	k.start, k.cmds, k.size, k.startDB, k.prev = k.offset, nil, 0, k.db, ""
	return nil
}
