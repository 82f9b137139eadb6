package mongodb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/drkit/drkit/replication"
)

// Side is one server's side of a comparison.
type Side struct {
	role string
	c    *mongo.Client
	// setName is the server's replica set ("" for a standalone server).
	setName string
	// shared is whether both sides are members of one replica set, so that
	// positions compare.
	shared bool
	// peer is the primary's replica, whose _id types count when the
	// primary cuts chunks.
	peer *Side
}

var (
	_ replication.PrimarySide = (*Side)(nil)
	_ replication.ReplicaSide = (*Side)(nil)
)

// SyncCheck compares the replica at replicaDSN with the primary at
// primaryDSN; opts carries the chunk size, waits, log and the collections
// to skip (db.collection).
func SyncCheck(ctx context.Context, primaryDSN, replicaDSN string, opts replication.Checker) (replication.Report, error) {
	p, err := open(ctx, "primary", primaryDSN)
	if err != nil {
		return replication.Report{}, err
	}
	defer p.Close()
	if cs, err := connstring.ParseAndValidate(replicaDSN); err == nil && len(cs.Hosts) != 1 {
		// A replica set URL would lead the driver to the primary, which
		// would then be compared with itself.
		return replication.Report{}, fmt.Errorf("replica dsn: give the replica's one host (mongodb://host:27017/), not %d hosts", len(cs.Hosts))
	}
	r, err := open(ctx, "replica", replicaDSN)
	if err != nil {
		return replication.Report{}, err
	}
	defer r.Close()
	p.shared = p.setName != "" && p.setName == r.setName
	r.shared, p.peer = p.shared, r
	if !p.shared && opts.Log != nil {
		opts.Log.Warn("the primary and the replica are not members of one replica set: no position to wait for, they are compared as they stand",
			"primary_set", p.setName, "replica_set", r.setName)
	}
	opts.Primary, opts.Replica = p, r
	return opts.Run(ctx)
}

// open connects to one server directly (a replica set URL would lead the
// driver to the primary) and reads its replica set name.
func open(ctx context.Context, role, dsn string) (*Side, error) {
	cs, err := connstring.ParseAndValidate(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: the dsn is not a MongoDB URL: %w", role, err)
	}
	o := options.Client().ApplyURI(dsn)
	if !cs.ServerSelectionTimeoutSet {
		o.SetServerSelectionTimeout(10 * time.Second)
	}
	if len(cs.Hosts) == 1 {
		o.SetDirect(true)
	}
	c, err := mongo.Connect(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", role, err)
	}
	var h struct {
		SetName string `bson:"setName"`
	}
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&h); err != nil {
		_ = c.Disconnect(context.Background())
		return nil, fmt.Errorf("%s: hello: %w (check the dsn's host, user and password)", role, err)
	}
	return &Side{role: role, c: c, setName: h.SetName}, nil
}

// Close disconnects.
func (s *Side) Close() { _ = s.c.Disconnect(context.Background()) }

// systemDBs hold the server's own state, not data.
var systemDBs = map[string]bool{"admin": true, "local": true, "config": true}

// Tables implements replication.PrimarySide: every collection, keyed by
// _id unless its _ids span type brackets.
func (s *Side) Tables(ctx context.Context) ([]replication.Table, error) {
	dbs, err := s.c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return nil, err
	}
	var out []replication.Table
	for _, db := range dbs {
		if systemDBs[db] {
			continue
		}
		specs, err := s.c.Database(db).ListCollectionSpecifications(ctx, bson.D{})
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", db, err)
		}
		for _, spec := range specs {
			if spec.Type == "view" || len(spec.Name) >= 7 && spec.Name[:7] == "system." {
				continue
			}
			t := replication.Table{Schema: db, Name: spec.Name}
			one, err := s.oneBracket(ctx, t)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t, err)
			}
			if one {
				t.Key = []string{"_id"}
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// idBracket returns the type bracket of the collection's _ids on this
// side: empty when it holds no document, uniform when its lowest and
// highest _id are of one bracket (so that _id ranges find every document).
func (s *Side) idBracket(ctx context.Context, t replication.Table) (b int, empty, uniform bool, err error) {
	var brackets []int
	for _, dir := range []int{1, -1} {
		var d bson.Raw
		err := s.coll(t).FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: dir}}).SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return 0, true, true, nil
		}
		if err != nil {
			return 0, false, false, fmt.Errorf("%s: %w", s.role, err)
		}
		brackets = append(brackets, bracket(d.Lookup("_id").Type))
	}
	return brackets[0], false, brackets[0] == brackets[1] && brackets[0] >= 0, nil
}

// oneBracket reports whether the collection's _ids are of one type bracket
// on this side and on its peer's (a replica may hold documents the primary
// lacks, of another _id type, which _id ranges of the primary's type would
// never match).
func (s *Side) oneBracket(ctx context.Context, t replication.Table) (bool, error) {
	b, empty, uniform, err := s.idBracket(ctx, t)
	if err != nil || !uniform || s.peer == nil {
		return uniform, err
	}
	pb, pempty, puniform, err := s.peer.idBracket(ctx, t)
	if err != nil {
		return false, err
	}
	return puniform && (empty || pempty || b == pb), nil
}

// bracket is the comparison type bracket of a BSON type as MongoDB orders
// values (numbers compare with each other, strings and symbols too); -1
// for types whose range queries this package does not rely on.
func bracket(t bson.Type) int {
	switch t {
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble, bson.TypeDecimal128:
		return 1
	case bson.TypeString, bson.TypeSymbol:
		return 2
	case bson.TypeEmbeddedDocument:
		return 3
	case bson.TypeBinary:
		return 5
	case bson.TypeObjectID:
		return 6
	case bson.TypeBoolean:
		return 7
	case bson.TypeDateTime:
		return 8
	case bson.TypeTimestamp:
		return 9
	}
	return -1
}

func (s *Side) coll(t replication.Table) *mongo.Collection {
	return s.c.Database(t.Schema).Collection(t.Name)
}

// rangeFilter selects _id in [lo, hi); nil bounds are open.
func rangeFilter(lo, hi replication.Key) (bson.D, error) {
	var cond bson.D
	for _, b := range []struct {
		op string
		k  replication.Key
	}{{"$gte", lo}, {"$lt", hi}} {
		if b.k == nil {
			continue
		}
		v, err := decodeKey(b.k)
		if err != nil {
			return nil, err
		}
		cond = append(cond, bson.E{Key: b.op, Value: v})
	}
	if cond == nil {
		return bson.D{}, nil
	}
	return bson.D{{Key: "_id", Value: cond}}, nil
}

// Sum implements replication.Side: the documents of [lo, hi) in _id order,
// counted and hashed.
func (s *Side) Sum(ctx context.Context, t replication.Table, lo, hi replication.Key) (replication.Sum, error) {
	filter, err := rangeFilter(lo, hi)
	if err != nil {
		return replication.Sum{}, err
	}
	cur, err := s.coll(t).Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(1000))
	if err != nil {
		return replication.Sum{}, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	h := sha256.New()
	var n int64
	var size [4]byte
	for cur.Next(ctx) {
		// The length keeps two documents from hashing as one.
		binary.LittleEndian.PutUint32(size[:], uint32(len(cur.Current)))
		h.Write(size[:])
		h.Write(cur.Current)
		n++
	}
	if err := cur.Err(); err != nil {
		return replication.Sum{}, err
	}
	return replication.Sum{Rows: n, Hash: hex.EncodeToString(h.Sum(nil))}, nil
}

// Next implements replication.PrimarySide: the _id n documents past lo.
func (s *Side) Next(ctx context.Context, t replication.Table, lo replication.Key, n int) (replication.Key, error) {
	filter, err := rangeFilter(lo, nil)
	if err != nil {
		return nil, err
	}
	var d bson.Raw
	err = s.coll(t).FindOne(ctx, filter, options.FindOne().SetSort(bson.D{{Key: "_id", Value: 1}}).SetSkip(int64(n)).SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return encodeKey(d.Lookup("_id"))
}

// Position implements replication.PrimarySide: the last write's optime on
// a replica set ("" between servers that do not replicate to each other).
func (s *Side) Position(ctx context.Context) (string, error) {
	if !s.shared {
		return "", nil
	}
	ts, err := s.lastWrite(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d", ts.T, ts.I), nil
}

// WaitFor implements replication.ReplicaSide: until the replica's last
// write reaches pos.
func (s *Side) WaitFor(ctx context.Context, pos string, timeout time.Duration) error {
	if pos == "" {
		return nil
	}
	var want bson.Timestamp
	if _, err := fmt.Sscanf(pos, "%d:%d", &want.T, &want.I); err != nil {
		return fmt.Errorf("position %q: %w", pos, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		ts, err := s.lastWrite(ctx)
		if err != nil {
			return err
		}
		if ts.After(want) || ts.Equal(want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("at %d:%d, waiting for %s: %w", ts.T, ts.I, pos, replication.ErrNotCaughtUp)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lastWrite is the server's last applied write (hello's lastWrite.opTime).
func (s *Side) lastWrite(ctx context.Context) (bson.Timestamp, error) {
	var h struct {
		LastWrite struct {
			OpTime struct {
				TS bson.Timestamp `bson:"ts"`
			} `bson:"opTime"`
		} `bson:"lastWrite"`
	}
	if err := s.c.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&h); err != nil {
		return bson.Timestamp{}, fmt.Errorf("%s: hello: %w", s.role, err)
	}
	return h.LastWrite.OpTime.TS, nil
}

// encodeKey renders an _id as canonical extended JSON, which decodeKey
// reads back to the same value and type.
func encodeKey(v bson.RawValue) (replication.Key, error) {
	b, err := bson.MarshalExtJSON(bson.D{{Key: "k", Value: v}}, true, false)
	if err != nil {
		return nil, fmt.Errorf("an _id: %w", err)
	}
	b = bytes.TrimSuffix(bytes.TrimPrefix(b, []byte(`{"k":`)), []byte("}"))
	return replication.Key{string(b)}, nil
}

func decodeKey(k replication.Key) (any, error) {
	if len(k) != 1 {
		return nil, fmt.Errorf("an _id bound of %d values", len(k))
	}
	var d bson.D
	if err := bson.UnmarshalExtJSON([]byte(`{"k":`+k[0]+`}`), true, &d); err != nil || len(d) != 1 {
		return nil, fmt.Errorf("an _id bound %s: %v", k[0], err)
	}
	return d[0].Value, nil
}
