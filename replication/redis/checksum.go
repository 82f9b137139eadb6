package redis

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drkit/drkit/internal/redisinfo"
	"github.com/drkit/drkit/replication"
)

// Redis has no ordered index over its keys, so a comparison cannot cut key
// ranges on the fly as the SQL engines do. OpenSides scans both servers'
// keys once (SCAN, which does not block the server) and both sides compare
// the union of the two sets, sorted: a key missing on either side, an extra
// key on the replica and a changed value all show as a differing chunk.
// Keys created after the scan are not compared in this run; keys changed
// during it are compared again at a newer position by the Checker. Each
// database (db0, db1, ...) is one "table" named dbN.keys. Memory: the key
// names of both servers, once.

// keyIndex is the sorted union of both servers' keys per database.
type keyIndex map[int][]string

// Side is one Redis server's side of a checksum comparison.
type Side struct {
	opt     *goredis.Options
	clients map[int]*goredis.Client
	keys    keyIndex
	// expireTime is whether the server has PEXPIRETIME (Redis 7), so that
	// expiry (an absolute time, the same on a replica) is compared too.
	expireTime bool
	role       string
}

var (
	_ replication.PrimarySide = (*Side)(nil)
	_ replication.ReplicaSide = (*Side)(nil)
)

// OpenSides connects to the primary and the replica and indexes their keys,
// leaving out skip (such as the heartbeat key). Close both sides when done.
func OpenSides(ctx context.Context, primaryDSN, replicaDSN string, skip []string) (primary, replica *Side, err error) {
	if primary, err = openSide(ctx, "primary", primaryDSN); err != nil {
		return nil, nil, err
	}
	if replica, err = openSide(ctx, "replica", replicaDSN); err != nil {
		primary.Close()
		return nil, nil, err
	}
	idx := keyIndex{}
	for _, s := range []*Side{primary, replica} {
		if err := s.scan(ctx, idx, skip); err != nil {
			primary.Close()
			replica.Close()
			return nil, nil, err
		}
	}
	for db, keys := range idx {
		slices.Sort(keys)
		idx[db] = slices.Compact(keys)
	}
	primary.keys, replica.keys = idx, idx
	return primary, replica, nil
}

func openSide(ctx context.Context, role, dsn string) (*Side, error) {
	c, err := connect(ctx, role, dsn)
	if err != nil {
		return nil, err
	}
	s := &Side{opt: c.Options(), clients: map[int]*goredis.Client{c.Options().DB: c}, role: role}
	srv, err := redisinfo.Get(ctx, c, "server")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", role, err)
	}
	s.expireTime = major(srv["redis_version"]) >= 7
	return s, nil
}

// Close closes the side's connections.
func (s *Side) Close() {
	for _, c := range s.clients {
		_ = c.Close()
	}
}

// db returns a client on database n.
func (s *Side) db(n int) *goredis.Client {
	if c, ok := s.clients[n]; ok {
		return c
	}
	opt := *s.opt
	opt.DB = n
	c := goredis.NewClient(&opt)
	s.clients[n] = c
	return c
}

// databases lists the databases that hold keys (INFO keyspace).
func (s *Side) databases(ctx context.Context) ([]int, error) {
	ks, err := redisinfo.Get(ctx, s.db(s.opt.DB), "keyspace")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.role, err)
	}
	var out []int
	for k := range ks {
		if n, err := strconv.Atoi(strings.TrimPrefix(k, "db")); err == nil && strings.HasPrefix(k, "db") {
			out = append(out, n)
		}
	}
	return out, nil
}

// scan adds the side's keys to idx.
func (s *Side) scan(ctx context.Context, idx keyIndex, skip []string) error {
	dbs, err := s.databases(ctx)
	if err != nil {
		return err
	}
	for _, db := range dbs {
		it := s.db(db).Scan(ctx, 0, "", 1000).Iterator()
		for it.Next(ctx) {
			if k := it.Val(); !slices.Contains(skip, k) {
				idx[db] = append(idx[db], k)
			}
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("%s: SCAN db%d: %w", s.role, db, err)
		}
	}
	return nil
}

// Tables implements replication.PrimarySide: one per database with keys on
// either server.
func (s *Side) Tables(context.Context) ([]replication.Table, error) {
	var dbs []int
	for db := range s.keys {
		dbs = append(dbs, db)
	}
	slices.Sort(dbs)
	out := make([]replication.Table, 0, len(dbs))
	for _, db := range dbs {
		out = append(out, replication.Table{Schema: "db" + strconv.Itoa(db), Name: "keys", Key: []string{"key"}})
	}
	return out, nil
}

// dbOf is the database a table stands for.
func dbOf(t replication.Table) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(t.Schema, "db"))
	return n
}

// span returns the indexed keys of t in [lo, hi).
func (s *Side) span(t replication.Table, lo, hi replication.Key) []string {
	keys := s.keys[dbOf(t)]
	from, to := 0, len(keys)
	if lo != nil {
		from, _ = slices.BinarySearch(keys, lo[0])
	}
	if hi != nil {
		to, _ = slices.BinarySearch(keys, hi[0])
	}
	if from > to {
		return nil
	}
	return keys[from:to]
}

// Next implements replication.PrimarySide.
func (s *Side) Next(_ context.Context, t replication.Table, lo replication.Key, n int) (replication.Key, error) {
	rest := s.span(t, lo, nil)
	if n >= len(rest) {
		return nil, nil
	}
	return replication.Key{rest[n]}, nil
}

// Position implements replication.PrimarySide: the primary's replication
// offset, which covers every write it has answered.
func (s *Side) Position(ctx context.Context) (string, error) {
	r, err := redisinfo.Get(ctx, s.db(s.opt.DB), "replication")
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.role, err)
	}
	return r["master_repl_offset"], nil
}

// WaitFor implements replication.ReplicaSide: it polls the replica's
// processed offset.
func (s *Side) WaitFor(ctx context.Context, pos string, timeout time.Duration) error {
	want, err := strconv.ParseInt(pos, 10, 64)
	if err != nil {
		return fmt.Errorf("primary offset %q: %w", pos, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		r, err := redisinfo.Get(ctx, s.db(s.opt.DB), "replication")
		if err != nil {
			return fmt.Errorf("%s: %w", s.role, err)
		}
		got, _ := strconv.ParseInt(r["slave_repl_offset"], 10, 64)
		switch {
		case r["role"] != "slave":
			return fmt.Errorf("%s is not a replica (role %s)", s.role, r["role"])
		case got >= want:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("replica at offset %d did not reach the primary's %d within %s (link %s)", got, want, timeout, r["master_link_status"])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Sum implements replication.Side: a hash over each present key's name,
// type, expiry and value, in key order.
func (s *Side) Sum(ctx context.Context, t replication.Table, lo, hi replication.Key) (replication.Sum, error) {
	keys := s.span(t, lo, hi)
	c := s.db(dbOf(t))
	h := md5.New()
	var sum replication.Sum
	for batch := range slices.Chunk(keys, 200) {
		n, err := s.sumBatch(ctx, c, batch, h)
		if err != nil {
			return sum, fmt.Errorf("%s: %s: %w", s.role, t, err)
		}
		sum.Rows += n
	}
	sum.Hash = hex.EncodeToString(h.Sum(nil))
	return sum, nil
}

// sumBatch hashes keys in two pipelined round trips: types and expiries,
// then values.
func (s *Side) sumBatch(ctx context.Context, c *goredis.Client, keys []string, h hash.Hash) (int64, error) {
	pipe := c.Pipeline()
	types := make([]*goredis.StatusCmd, len(keys))
	expiry := make([]*goredis.DurationCmd, len(keys))
	for i, k := range keys {
		types[i] = pipe.Type(ctx, k)
		if s.expireTime {
			expiry[i] = pipe.PExpireTime(ctx, k)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("TYPE: %w", err)
	}
	pipe = c.Pipeline()
	values := make([]goredis.Cmder, len(keys))
	for i, k := range keys {
		values[i] = readValue(ctx, pipe, types[i].Val(), k)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != goredis.Nil {
		return 0, fmt.Errorf("read values: %w", err)
	}
	var present int64
	for i, k := range keys {
		typ := types[i].Val()
		if typ == "none" {
			continue // absent here: the other side's hash has it, so they differ
		}
		present++
		write(h, k, typ)
		if expiry[i] != nil {
			write(h, strconv.FormatInt(int64(expiry[i].Val()/time.Millisecond), 10))
		}
		if err := hashValue(h, values[i]); err != nil {
			return 0, fmt.Errorf("key %q: %w", k, err)
		}
	}
	return present, nil
}

// readValue queues the command that reads a key's whole value in an order
// that does not depend on the server's internal encoding.
func readValue(ctx context.Context, p goredis.Pipeliner, typ, key string) goredis.Cmder {
	switch typ {
	case "none":
		return nil
	case "string":
		return p.Get(ctx, key)
	case "hash":
		return p.HGetAll(ctx, key)
	case "list":
		return p.LRange(ctx, key, 0, -1)
	case "set":
		return p.SMembers(ctx, key)
	case "zset":
		return p.ZRangeWithScores(ctx, key, 0, -1)
	case "stream":
		return p.XRange(ctx, key, "-", "+")
	}
	// Module types: their serialized form is the best there is.
	return p.Dump(ctx, key)
}

// hashValue adds a value read by readValue to h, sorted where Redis keeps
// no order.
func hashValue(h hash.Hash, c goredis.Cmder) error {
	if err := c.Err(); err != nil && err != goredis.Nil {
		return err
	}
	switch c := c.(type) {
	case *goredis.StringCmd:
		write(h, c.Val())
	case *goredis.MapStringStringCmd:
		m := c.Val()
		for _, f := range slices.Sorted(maps.Keys(m)) {
			write(h, f, m[f])
		}
	case *goredis.StringSliceCmd:
		v := c.Val()
		if c.Args()[0] == "smembers" {
			v = slices.Sorted(slices.Values(v))
		}
		write(h, v...)
	case *goredis.ZSliceCmd:
		for _, z := range c.Val() {
			write(h, fmt.Sprint(z.Member), strconv.FormatFloat(z.Score, 'g', -1, 64))
		}
	case *goredis.XMessageSliceCmd:
		for _, m := range c.Val() {
			write(h, m.ID)
			for _, f := range slices.Sorted(maps.Keys(m.Values)) {
				write(h, f, fmt.Sprint(m.Values[f]))
			}
		}
	default:
		return fmt.Errorf("unexpected reply %T", c)
	}
	return nil
}

// write adds length-prefixed strings to h, so that ("ab","c") and ("a","bc")
// hash differently.
func write(h hash.Hash, ss ...string) {
	var n [8]byte
	for _, s := range ss {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
}
