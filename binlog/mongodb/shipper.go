package mongodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"

	"github.com/drkit/drkit/binlog"
	"github.com/drkit/drkit/storage"
)

// Shipper is drd's oplog shipper of one cluster.
type Shipper struct {
	Cluster       string
	DSN           string
	Regions       []*storage.Region
	FlushInterval time.Duration
	Log           *slog.Logger

	mu     sync.Mutex
	states map[string]*regionState
	ready  error
}

// regionState is one region's reader's progress (guarded by Shipper.mu).
type regionState struct {
	shippedAt time.Time
	// pendingSince is when drd read the oldest entry the region does not
	// hold yet (zero: none).
	pendingSince time.Time
	behind       bool
}

var errNotStarted = errors.New("the oplog shipper has not reached the server yet")

// Name implements lifecycle.Component.
func (s *Shipper) Name() string { return "mongodb oplog shipper " + s.Cluster }

// Ready reports whether the shipper reads the oplog.
func (s *Shipper) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.states == nil && s.ready == nil {
		return errNotStarted
	}
	return s.ready
}

// Progress implements binlog.Shipper.
func (s *Shipper) Progress(now time.Time) (string, string, []binlog.RegionProgress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []binlog.RegionProgress
	for _, r := range s.Regions {
		st, ok := s.states[r.Name]
		if !ok || st.shippedAt.IsZero() {
			continue
		}
		p := binlog.RegionProgress{Region: r.Name, ShippedAt: st.shippedAt, CatchingUp: st.behind}
		if !st.pendingSince.IsZero() {
			p.Exposure = max(0, now.Sub(st.pendingSince))
		}
		out = append(out, p)
	}
	return s.Cluster, "mongodb", out
}

func (s *Shipper) update(region string, fn func(*regionState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.states == nil {
		s.states = map[string]*regionState{}
	}
	st, ok := s.states[region]
	if !ok {
		st = &regionState{}
		s.states[region] = st
	}
	fn(st)
}

// Run ships until ctx ends: one reader per region, each from where its
// region's oplog ends.
func (s *Shipper) Run(ctx context.Context) error {
	if s.FlushInterval <= 0 {
		s.FlushInterval = time.Second
	}
	var src *Source
	for {
		var err error
		if src, err = Connect(ctx, s.DSN); err == nil {
			break
		}
		s.mu.Lock()
		s.ready = err
		s.mu.Unlock()
		s.Log.Warn("cannot read the oplog; retrying", "cluster", s.Cluster, "err", err)
		if binlog.Sleep(ctx, 5*time.Second); ctx.Err() != nil {
			return nil
		}
	}
	defer src.Close()
	s.mu.Lock()
	s.ready = nil
	if s.states == nil {
		s.states = map[string]*regionState{}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range s.Regions {
		wg.Go(func() {
			for ctx.Err() == nil {
				err := s.runRegion(ctx, src, r)
				if ctx.Err() != nil {
					return
				}
				s.update(r.Name, func(st *regionState) { st.behind = true })
				s.Log.Warn("region's oplog reader stopped; restarting", "cluster", s.Cluster, "region", r.Name, "err", err)
				binlog.Sleep(ctx, 2*time.Second)
			}
		})
	}
	wg.Wait()
	return nil
}

// reader is one region's reader state.
type reader struct {
	s      *Shipper
	src    *Source
	region *storage.Region
	cat    *Catalog
	chain  TS
	end    TS // the region's chain ends here
	hw     TS // the newest ts read
	held   map[string]TS
	// pending are read and not yet stored in the region.
	pending      []Entry
	pendingBytes int
	lastFlush    time.Time
}

// maxChunkBytes cuts a chunk before the flush interval when this much is
// pending.
const maxChunkBytes = 16 << 20

func (s *Shipper) runRegion(ctx context.Context, src *Source, r *storage.Region) error {
	rd := &reader{s: s, src: src, region: r, cat: &Catalog{Pipeline: r.Pipeline, Cluster: s.Cluster}, held: map[string]TS{}, lastFlush: time.Now()}
	if err := rd.start(ctx); err != nil {
		return err
	}
	s.update(r.Name, func(st *regionState) { st.behind = false })
	for ctx.Err() == nil {
		n, err := rd.poll(ctx)
		if err != nil {
			return err
		}
		if err := rd.flushDue(ctx, n == 0); err != nil {
			return err
		}
		if n == 0 {
			// A read scans the whole oplog on FerretDB: not more often
			// than this, but no later than a pending chunk is due.
			wait := min(s.FlushInterval/2, 250*time.Millisecond)
			if len(rd.pending) > 0 {
				wait = min(wait, max(time.Until(rd.lastFlush.Add(s.FlushInterval)), time.Millisecond))
			}
			binlog.Sleep(ctx, wait)
		}
	}
	// At stop, store what was read: a restart would read it again anyway,
	// but a clean stop leaves nothing for it.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return rd.flush(stopCtx)
}

// start finds where the region's oplog ends and whether the server's
// oplog still holds it.
func (rd *reader) start(ctx context.Context) error {
	refs, err := rd.cat.List(ctx)
	if err != nil {
		return err
	}
	oldest, newest, err := rd.src.Bounds(ctx)
	if err != nil {
		return err
	}
	chains := Chains(refs)
	switch {
	case len(chains) == 0:
		// From the newest entry less the lookback: a base backup taken from
		// now on starts there or later (snapshots/mongodb), and its restore
		// needs the oplog from its start.
		rd.chain = newest.Back(rd.src.Lookback)
		rd.end = rd.chain
		rd.s.Log.Info("region holds no oplog yet: shipping from the oplog's newest entry", "cluster", rd.s.Cluster, "region", rd.region.Name, "ts", newest)
	case oldest > chains[len(chains)-1].End+1 && oldest != 0:
		last := chains[len(chains)-1].End
		rd.chain, rd.end = oldest-1, oldest-1
		rd.s.Log.Warn("the oplog no longer holds where the region's oplog ends (it rolled over while drd did not read it): a new chain begins; restores do not cross the gap",
			"cluster", rd.s.Cluster, "region", rd.region.Name, "region_end", last, "oplog_oldest", oldest)
	default:
		last := chains[len(chains)-1]
		rd.chain, rd.end = last.Start, last.End
		if err := rd.loadHeld(ctx, last); err != nil {
			return err
		}
		rd.s.Log.Info("continuing the region's oplog", "cluster", rd.s.Cluster, "region", rd.region.Name, "ts", rd.end)
	}
	rd.hw = rd.end
	return nil
}

// loadHeld reads the keys of the entries the region holds within the
// lookback before its end, so that reading them again stores none twice.
func (rd *reader) loadHeld(ctx context.Context, ch Chain) error {
	if rd.src.Lookback == 0 {
		return nil
	}
	from := ch.End.Back(rd.src.Lookback + 1)
	for i := len(ch.Chunks) - 1; i >= 0 && ch.Chunks[i].End >= from; i-- {
		err := rd.cat.Each(ctx, ch.Chunks[i], func(e Entry) error {
			if e.TS >= from {
				rd.held[e.Key()] = e.TS
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// poll reads what the oplog holds past the high-water mark (less the
// lookback) and returns how many new entries it took.
func (rd *reader) poll(ctx context.Context) (int, error) {
	n := 0
	err := rd.src.Read(ctx, rd.hw, func(e Entry) error {
		k := e.Key()
		if _, dup := rd.held[k]; dup {
			return nil
		}
		if rd.src.Lookback > 0 {
			rd.held[k] = e.TS
		}
		if len(rd.pending) == 0 {
			rd.s.update(rd.region.Name, func(st *regionState) { st.pendingSince = time.Now() })
		}
		rd.pending = append(rd.pending, e)
		rd.pendingBytes += len(e.Raw)
		rd.hw = max(rd.hw, e.TS)
		n++
		if rd.pendingBytes >= maxChunkBytes || time.Since(rd.lastFlush) >= rd.s.FlushInterval {
			return rd.flush(ctx)
		}
		return nil
	})
	if rd.src.Lookback > 0 {
		floor := rd.hw.Back(rd.src.Lookback + 1)
		for k, t := range rd.held {
			if t < floor {
				delete(rd.held, k)
			}
		}
	}
	return n, err
}

// flushDue stores the pending entries once a flush interval has passed;
// an idle region is durable as of now.
func (rd *reader) flushDue(ctx context.Context, idle bool) error {
	if len(rd.pending) == 0 {
		if idle {
			rd.s.update(rd.region.Name, func(st *regionState) { st.shippedAt = time.Now() })
		}
		return nil
	}
	if time.Since(rd.lastFlush) < rd.s.FlushInterval {
		return nil
	}
	return rd.flush(ctx)
}

// flush stores the pending entries as one chunk, retrying until it is
// stored or ctx ends: the reader reads nothing meanwhile, so a dead store
// holds back its own region only.
func (rd *reader) flush(ctx context.Context) error {
	if len(rd.pending) == 0 {
		return nil
	}
	now := time.Now()
	h := ChunkHeader{Chain: rd.chain, Start: rd.end, End: rd.hw, Entries: len(rd.pending), SealMS: now.UnixMilli(),
		FirstMS: rd.pending[0].Wall.UnixMilli(), LastMS: rd.pending[0].Wall.UnixMilli()}
	for _, e := range rd.pending {
		h.FirstMS, h.LastMS = min(h.FirstMS, e.Wall.UnixMilli()), max(h.LastMS, e.Wall.UnixMilli())
	}
	h.FirstMS = max(0, h.FirstMS)
	h.SealMS = max(h.SealMS, h.LastMS)
	for attempt := 0; ; attempt++ {
		_, err := rd.cat.Put(ctx, h, rd.pending)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("region %s: store oplog chunk: %w", rd.region.Name, err)
		}
		if attempt == 0 {
			rd.s.update(rd.region.Name, func(st *regionState) { st.behind = true })
		}
		rd.s.Log.Warn("region: storing an oplog chunk failed; retrying", "cluster", rd.s.Cluster, "region", rd.region.Name, "err", err)
		binlog.Sleep(ctx, min(time.Duration(attempt+1)*500*time.Millisecond, 5*time.Second))
	}
	rd.end, rd.pending, rd.pendingBytes, rd.lastFlush = rd.hw, rd.pending[:0], 0, now
	rd.s.update(rd.region.Name, func(st *regionState) {
		st.shippedAt, st.pendingSince, st.behind = now, time.Time{}, false
	})
	return nil
}

// Source is a server's oplog.
type Source struct {
	client *mongo.Client
	oplog  *mongo.Collection
	// Lookback is how many seconds of ts a read goes back to find entries
	// written late with an older ts: 1 on a server without a replica set
	// name (FerretDB), 0 on a replica set.
	Lookback uint32
	// ReplicaSet is the server's replica set name.
	ReplicaSet string
}

// Connect opens the oplog of the server at dsn and checks that it has one.
func Connect(ctx context.Context, dsn string) (*Source, error) {
	c, err := mongo.Connect(options.Client().ApplyURI(dsn).SetServerSelectionTimeout(10 * time.Second).SetAppName("drkit"))
	if err != nil {
		return nil, fmt.Errorf("mongodb: %w", err)
	}
	src, err := openOplog(ctx, c)
	if err != nil {
		_ = c.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return src, nil
}

func openOplog(ctx context.Context, c *mongo.Client) (*Source, error) {
	var hello struct {
		SetName string `bson:"setName"`
	}
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return nil, fmt.Errorf("mongodb: hello: %w (check the dsn's host, user and password)", err)
	}
	names, err := c.Database("local").ListCollectionNames(ctx, bson.D{{Key: "name", Value: "oplog.rs"}})
	if err != nil {
		return nil, fmt.Errorf("mongodb: list local's collections: %w (the user needs read access to the local database)", err)
	}
	if len(names) == 0 {
		return nil, errors.New("mongodb: the server has no local.oplog.rs: drd ships a replica set member's oplog (a standalone mongod has none: start it with --replSet and rs.initiate())")
	}
	src := &Source{client: c, ReplicaSet: hello.SetName}
	dbOpts := options.Database()
	if hello.SetName == "" {
		src.Lookback = 1
	} else {
		dbOpts.SetReadConcern(readconcern.Majority())
	}
	src.oplog = c.Database("local", dbOpts).Collection("oplog.rs")
	return src, nil
}

// Close disconnects.
func (s *Source) Close() { _ = s.client.Disconnect(context.Background()) }

// Bounds returns the oldest and newest entries' ts (0, 0 for an empty
// oplog).
func (s *Source) Bounds(ctx context.Context) (oldest, newest TS, err error) {
	for i, dir := range []int{1, -1} {
		var doc bson.Raw
		err := s.oplog.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: dir}}).SetProjection(bson.D{{Key: "ts", Value: 1}})).Decode(&doc)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return 0, 0, nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("mongodb: read the oplog's ends: %w", err)
		}
		t, inc, ok := doc.Lookup("ts").TimestampOK()
		if !ok {
			return 0, 0, errors.New("mongodb: an oplog entry without a ts")
		}
		if i == 0 {
			oldest = MakeTS(bson.Timestamp{T: t, I: inc})
		} else {
			newest = MakeTS(bson.Timestamp{T: t, I: inc})
		}
	}
	if s.Lookback > 0 { // natural order is write order, not ts order
		oldest, newest = min(oldest, newest), max(oldest, newest)
	}
	return oldest, newest, nil
}

// Read calls fn with the entries past hw (less the lookback), in the
// order the server stored them, until the cursor holds no more for now.
func (s *Source) Read(ctx context.Context, hw TS, fn func(Entry) error) error {
	filter := bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: hw.Timestamp()}}}}
	if s.Lookback > 0 {
		filter = bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: hw.Back(s.Lookback).Timestamp()}}}}
	}
	cur, err := s.oplog.Find(ctx, filter, options.Find().SetCursorType(options.TailableAwait).SetMaxAwaitTime(100*time.Millisecond).SetBatchSize(1000))
	if err != nil {
		return fmt.Errorf("mongodb: read the oplog: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	// TryNext returns false once the cursor holds nothing for now; a
	// tailable cursor stays open on a replica set, and FerretDB closes it,
	// which is why the caller reads again from its high-water mark. The
	// cursor is read to its end: a read that stopped after a number of
	// entries would, with more than that many within the lookback, find
	// only entries it already held, again and again.
	for cur.TryNext(ctx) {
		// Current points into the cursor's batch, which the driver reuses.
		e, err := ParseEntry(append(bson.Raw(nil), cur.Current...))
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("mongodb: read the oplog: %w", err)
	}
	return nil
}

// Client is the source's connection, for reads beside the oplog (a base
// backup's collections).
func (s *Source) Client() *mongo.Client { return s.client }
