package mysql

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
// (storage.LinkedFence): the one the next chunk continues, by their headers'
// positions, which are read only for numbers two chunks share and for the
// chunk after them. refs are in sequence order.
func (c *Catalog) fenceLinked(ctx context.Context, refs []ChunkRef) (kept, late, held []ChunkRef, err error) {
	type read struct {
		h  ChunkHeader
		ok bool
	}
	headers := map[string]read{}
	// header reads r's header; ok is false for a chunk that is gone or does
	// not read as one (it links to nothing: the chain's checks report it),
	// and an error is the store's (the settling cannot be trusted then).
	header := func(r ChunkRef) (ChunkHeader, bool, error) {
		if h, seen := headers[r.Object.Key]; seen {
			return h.h, h.ok, nil
		}
		rc, err := c.Pipeline.Open(ctx, r.Object)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			headers[r.Object.Key] = read{}
			return ChunkHeader{}, false, nil
		case err != nil:
			return ChunkHeader{}, false, fmt.Errorf("region %s: read binlog chunk %d's header to settle which of its copies counts: %w", c.Pipeline.Region, r.Seq, err)
		}
		defer rc.Close()
		cr, err := newChunkReader(rc)
		if err != nil {
			headers[r.Object.Key] = read{}
			return ChunkHeader{}, false, nil
		}
		headers[r.Object.Key] = read{cr.Header, true}
		return cr.Header, true, nil
	}
	links := func(prev, next ChunkRef) (bool, error) {
		if next.Seq != prev.Seq+1 {
			return false, nil
		}
		p, okP, err := header(prev)
		if err != nil || !okP {
			return false, err
		}
		n, okN, err := header(next)
		return okN && p.End == n.Start, err
	}
	return storage.LinkedFence(refs, func(a, b ChunkRef) bool { return a.Seq == b.Seq }, func(r ChunkRef) uint64 { return r.Fence }, links)
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
// chunks of a drd that had lost its lease (fenceLatest).
func (c *Catalog) List(ctx context.Context) ([]ChunkRef, error) {
	kept, late, err := c.ListAll(ctx)
	for _, r := range late {
		slog.Warn("ignoring a binlog chunk a drd wrote after it lost its lease (another holder wrote that number)", "region", c.Pipeline.Region, "chunk", r.Object.Key, "fence", r.Fence)
	}
	return kept, err
}

// ListAll returns the region's chunks in sequence order, and apart the late
// chunks of a drd that had lost its lease, which prune deletes: the chain goes
// through another chunk at their position (storage.LinkedFence). A chunk at
// a position the chain does not settle yet is in neither list.
func (c *Catalog) ListAll(ctx context.Context) (kept, late []ChunkRef, err error) {
	var out []ChunkRef
	for info, err := range c.Pipeline.Store.List(ctx, c.prefix()) {
		if err != nil {
			return nil, nil, fmt.Errorf("region %s: list binlog: %w", c.Pipeline.Region, err)
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
	kept, late, _, err = c.fenceLinked(ctx, out)
	return kept, late, err
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
