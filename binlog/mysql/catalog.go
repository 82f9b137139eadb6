package mysql

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drkit/drkit/storage"
)

// Catalog names and finds one cluster's binlog in one region's store.
type Catalog struct {
	Pipeline *storage.Pipeline
	Cluster  string
}

// ClusterInfo is <cluster>/cluster.json, as for PostgreSQL: what the region
// holds, so that two engines' logs are never mixed under one name.
type ClusterInfo struct {
	Engine        string `json:"engine"`
	Flavor        string `json:"flavor"`
	ServerVersion string `json:"server_version,omitempty"`
}

// ChunkRef is a chunk found by listing: its sequence number, its last commit
// time and the record needed to read and verify it.
type ChunkRef struct {
	Seq      uint64
	LastTime int64
	// Fence is the lease generation of the drd that wrote the chunk
	// (drd.ha), 0 without a lease.
	Fence  uint64
	Object storage.Object
}

func (c *Catalog) prefix() string { return c.Cluster + "/binlog/" }

// chunkKey is <cluster>/binlog/<seq>-<last commit>[-f<fence>].<sha256>.<codec>:
// the zero padded sequence number sorts listings, the commit time lets a
// restore to a time stop without reading further, and the fence (the lease
// generation of a drd with drd.ha) settles which of two chunks numbered alike
// counts (List).
func (c *Catalog) chunkKey(seq uint64, lastTime int64, fence string, obj storage.Object) string {
	return fmt.Sprintf("%s%012d-%010d%s.%s.%s", c.prefix(), seq, lastTime, fence, obj.SHA256, storage.CodecExt(obj))
}

// parseChunkBase reads <seq>-<last commit>[-f<fence>] (a key's base name).
func parseChunkBase(base string) (seq uint64, lastTime int64, fence uint64, ok bool) {
	base, fence, ok = storage.CutFence(base)
	seqS, timeS, cut := strings.Cut(base, "-")
	var err1, err2 error
	seq, err1 = strconv.ParseUint(seqS, 10, 64)
	lastTime, err2 = strconv.ParseInt(timeS, 10, 64)
	return seq, lastTime, fence, ok && cut && err1 == nil && err2 == nil
}

// fenceLinked settles which of chunks numbered alike count
// (storage.LinkedFence) by their headers' positions, which it reads only
// around numbers two chunks share. refs are in sequence order.
func (c *Catalog) fenceLinked(ctx context.Context, refs []ChunkRef) (kept, late, held []ChunkRef, err error) {
	headers := map[string]positions{}
	header := func(r ChunkRef) (positions, error) {
		if h, seen := headers[r.Object.Key]; seen {
			return h, nil
		}
		h, err := c.positions(ctx, r)
		if err != nil {
			return positions{}, err
		}
		headers[r.Object.Key] = h
		return h, nil
	}
	links := func(prev, next ChunkRef) (bool, error) {
		if next.Seq != prev.Seq+1 {
			return false, nil
		}
		p, err := header(prev)
		if err != nil || !p.ok {
			return false, err
		}
		n, err := header(next)
		return n.ok && p.end.String() == n.start.String(), err
	}
	covers := func(a, b ChunkRef) (bool, error) {
		ha, err := header(a)
		if err != nil || !ha.ok {
			return false, err
		}
		hb, err := header(b)
		// b starts at or after a and ends at or before it.
		return hb.ok && hb.start.Covers(ha.start) && ha.end.Covers(hb.end), err
	}
	return storage.LinkedFence(refs, func(a, b ChunkRef) bool { return a.Seq == b.Seq }, func(r ChunkRef) uint64 { return r.Fence }, links, covers)
}

// positions is what fenceLinked reads of a chunk's header.
type positions struct {
	start, end Pos
	ok         bool
}

// positions reads a chunk's header positions. ok is false for a chunk that
// is gone or does not read as one (it then links to and covers nothing, and
// the chain's checks report it); an error is the store's or the network's,
// when which copy counts cannot be settled.
func (c *Catalog) positions(ctx context.Context, r ChunkRef) (positions, error) {
	rc, err := c.Pipeline.Open(ctx, r.Object)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return positions{}, nil
	case err != nil:
		return positions{}, fmt.Errorf("read binlog chunk %d's header to settle which of its copies counts: %w", r.Seq, err)
	}
	defer rc.Close()
	cr, err := newChunkReader(rc)
	var netErr net.Error
	switch {
	case errors.As(err, &netErr) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return positions{}, fmt.Errorf("read binlog chunk %d's header to settle which of its copies counts: %w", r.Seq, err)
	case err != nil:
		return positions{}, nil
	}
	start, err1 := ParsePos(cr.Header.Start)
	end, err2 := ParsePos(cr.Header.End)
	return positions{start: start, end: end, ok: err1 == nil && err2 == nil}, nil
}

// EnsureInfo writes cluster.json if missing and refuses a region that holds
// another engine's log under this cluster's name.
func (c *Catalog) EnsureInfo(ctx context.Context, want ClusterInfo) error {
	key := c.Cluster + "/cluster.json"
	rc, err := c.Pipeline.Store.Get(ctx, key, 0, -1)
	if err == nil {
		defer rc.Close()
		var have ClusterInfo
		if err := json.NewDecoder(rc).Decode(&have); err != nil {
			return fmt.Errorf("region %s: %s is not valid: %w", c.Pipeline.Region, key, err)
		}
		if have.Engine != want.Engine {
			return fmt.Errorf("region %s holds cluster %q of engine %s, not %s: use another cluster name or clear the region's %s/ folder",
				c.Pipeline.Region, c.Cluster, have.Engine, want.Engine, c.Cluster)
		}
		return nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("region %s: %w", c.Pipeline.Region, err)
	}
	b, _ := json.MarshalIndent(want, "", "  ")
	return c.Pipeline.Store.Put(ctx, key, strings.NewReader(string(b)+"\n"))
}

// List returns the region's chunks in sequence order, without the late
// chunks of a drd that had lost its lease (fenceLinked).
func (c *Catalog) List(ctx context.Context) ([]ChunkRef, error) {
	kept, late, _, err := c.ListAll(ctx)
	for _, r := range late {
		slog.Warn("ignoring a binlog chunk a drd wrote after it lost its lease (another chunk of that number holds all it held)", "region", c.Pipeline.Region, "chunk", r.Object.Key, "fence", r.Fence)
	}
	return kept, err
}

// ListAll returns the region's chunks in sequence order, and apart the late
// chunks of a drd that had lost its lease, which prune deletes: the chain goes
// through another chunk at their position, which holds what they held
// (storage.LinkedFence). held are the other chunks out of the chain: prune
// deletes them only as old as it deletes kept ones.
func (c *Catalog) ListAll(ctx context.Context) (kept, late, held []ChunkRef, err error) {
	var out []ChunkRef
	for info, err := range c.Pipeline.Store.List(ctx, c.prefix()) {
		if err != nil {
			return nil, nil, nil, fmt.Errorf("region %s: list binlog: %w", c.Pipeline.Region, err)
		}
		name := strings.TrimPrefix(info.Key, c.prefix())
		base, obj, ok := storage.ParseObjectName(info.Key, name, info.Size)
		if !ok {
			continue // not ours (an interrupted upload's temporary, a stray file)
		}
		seq, t, fence, ok := parseChunkBase(base)
		if !ok {
			continue
		}
		out = append(out, ChunkRef{Seq: seq, LastTime: t, Fence: fence, Object: obj})
	}
	slices.SortStableFunc(out, func(a, b ChunkRef) int { return cmp.Compare(a.Seq, b.Seq) })
	kept, late, held, err = c.fenceLinked(ctx, out)
	return kept, late, held, err
}

// Put stores a chunk as number seq.
func (c *Catalog) Put(ctx context.Context, seq uint64, e *encodedChunk) error {
	obj := c.Pipeline.Described(e.sum, int64(len(e.plain.Data)))
	obj.Key = c.chunkKey(seq, e.h.LastTime, storage.FenceSuffix(ctx), obj)
	if _, err := c.Pipeline.PutPlain(ctx, obj, e.plain); err != nil {
		return fmt.Errorf("put binlog chunk %d: %w", seq, err)
	}
	return nil
}

// open returns a reader over a chunk's events; the caller closes rc, and the
// checksum is verified when the events are read to the end.
func (c *Catalog) open(ctx context.Context, ref ChunkRef) (*chunkReader, func() error, error) {
	rc, err := c.Pipeline.Open(ctx, ref.Object)
	if err != nil {
		return nil, nil, err
	}
	cr, err := newChunkReader(rc)
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("region %s: %s: %w", c.Pipeline.Region, ref.Object.Key, err)
	}
	return cr, rc.Close, nil
}

// Header reads a chunk's header (the first bytes only).
func (c *Catalog) Header(ctx context.Context, ref ChunkRef) (ChunkHeader, error) {
	cr, closeFn, err := c.open(ctx, ref)
	if err != nil {
		return ChunkHeader{}, err
	}
	defer closeFn()
	return cr.Header, nil
}

// read downloads and verifies a whole chunk.
func (c *Catalog) read(ctx context.Context, ref ChunkRef) ([]byte, error) {
	rc, err := c.Pipeline.Open(ctx, ref.Object)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("binlog chunk %d: %w", ref.Seq, err)
	}
	return data, nil
}

// End returns the GTID position after the region's newest chunk and that
// chunk's last commit time; ok is false when the region holds no binlog yet.
func (c *Catalog) End(ctx context.Context) (end Pos, last time.Time, ok bool, err error) {
	refs, err := c.List(ctx)
	if err != nil || len(refs) == 0 {
		return nil, time.Time{}, false, err
	}
	h, err := c.Header(ctx, refs[len(refs)-1])
	if err != nil {
		return nil, time.Time{}, false, err
	}
	if end, err = ParsePos(h.End); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("region %s: newest binlog chunk %d: %w", c.Pipeline.Region, refs[len(refs)-1].Seq, err)
	}
	return end, time.Unix(h.LastTime, 0).UTC(), true, nil
}

// DurableEnd is End without the chunks past a gap: the position after the last
// chunk of the unbroken run from the region's oldest chunk. Chunk numbers
// follow each other (retention removes only the oldest), so a missing number
// is a gap, found from the listing alone; gap names it ("" when none).
func (c *Catalog) DurableEnd(ctx context.Context) (end Pos, last time.Time, gap string, ok bool, err error) {
	refs, err := c.List(ctx)
	if err != nil || len(refs) == 0 {
		return nil, time.Time{}, "", false, err
	}
	n := len(refs)
	for i := 1; i < len(refs); i++ {
		if refs[i].Seq != refs[i-1].Seq+1 {
			gap = fmt.Sprintf("binlog chunk %d is missing (the region holds chunks to %d past it)", refs[i-1].Seq+1, refs[len(refs)-1].Seq)
			n = i
			break
		}
	}
	h, err := c.Header(ctx, refs[n-1])
	if err != nil {
		return nil, time.Time{}, "", false, err
	}
	if end, err = ParsePos(h.End); err != nil {
		return nil, time.Time{}, "", false, fmt.Errorf("region %s: binlog chunk %d: %w", c.Pipeline.Region, refs[n-1].Seq, err)
	}
	return end, time.Unix(h.LastTime, 0).UTC(), gap, true, nil
}
