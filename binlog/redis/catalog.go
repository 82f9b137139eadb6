package redis

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drkit/drkit/storage"
)

// Catalog is a cluster's Redis stream in one region:
// <cluster>/stream/<replid>/<start>-<end>-<last ms>-<seal ms>.<sha256>.<codec>,
// the zero-padded offsets sorting a history's chunks, the last command's
// time letting a restore to a time stop without reading further, and the
// seal time (when drd cut the chunk: every command it received before then
// is in this chunk or an earlier one) saying to when a region holding the
// chunk is complete. Names without a seal time (drkit before it) read as
// sealed at their last command.
type Catalog struct {
	Pipeline *storage.Pipeline
	Cluster  string
}

// ChunkRef is a stored chunk, as its name describes it.
type ChunkRef struct {
	ReplID     string
	Start, End int64
	LastMS     int64
	// Sealed is when drd cut it: a region holding the stream to its end
	// holds every command drd received before then. Not the store's
	// modification time, which a copy or a catch-up sets long after.
	Sealed time.Time
	// Fence is the lease generation of the drd that wrote the chunk
	// (drd.ha), 0 without a lease.
	Fence  uint64
	Object storage.Object
}

func (c *Catalog) prefix() string { return c.Cluster + "/stream/" }

func (c *Catalog) chunkKey(h ChunkHeader, fence string, obj storage.Object) string {
	return fmt.Sprintf("%s%s/%020d-%020d-%013d-%013d%s.%s.%s", c.prefix(), h.ReplID, h.Start, h.End, h.LastMS, max(h.SealMS, h.LastMS), fence, obj.SHA256, storage.CodecExt(obj))
}

// Put stores a chunk.
func (c *Catalog) Put(ctx context.Context, h ChunkHeader, plain []byte) error {
	obj := c.Pipeline.Describe(plain)
	obj.Key = c.chunkKey(h, storage.FenceSuffix(ctx), obj)
	_, err := c.Pipeline.PutBytes(ctx, obj, plain)
	return err
}

// List returns the region's chunks of every history, each history's in
// offset order (histories by their first chunk's time), without the late
// chunks of a drd that had lost its lease.
func (c *Catalog) List(ctx context.Context) ([]ChunkRef, error) {
	kept, late, _, err := c.ListAll(ctx)
	for _, r := range late {
		slog.Warn("ignoring a Redis stream chunk a drd wrote after it lost its lease (another chunk from that offset holds all it held)", "region", c.Pipeline.Region, "chunk", r.Object.Key, "fence", r.Fence)
	}
	return kept, err
}

// ListAll returns what List does, and apart the late chunks of a drd that
// had lost its lease, which prune deletes: the chain goes
// through another chunk at their position, which holds what they held
// (storage.LinkedFence). held are the other chunks out of the chain: prune
// deletes them only as old as it deletes kept ones.
func (c *Catalog) ListAll(ctx context.Context) (kept, late, held []ChunkRef, err error) {
	var out []ChunkRef
	for info, err := range c.Pipeline.Store.List(ctx, c.prefix()) {
		if err != nil {
			return nil, nil, nil, fmt.Errorf("region %s: list the Redis stream: %w", c.Pipeline.Region, err)
		}
		if ref, ok := parseChunkKey(info, c.prefix()); ok {
			out = append(out, ref)
		}
	}
	slices.SortFunc(out, func(a, b ChunkRef) int {
		return cmp.Or(cmp.Compare(a.ReplID, b.ReplID), cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End))
	})
	// Two chunks from one offset: a drd that lost its lease finished an
	// upload after the new holder wrote from there: storage.LinkedFence
	// settles which counts (overlaps are fine in a replication stream).
	kept, late, held, err = storage.LinkedFence(out, func(a, b ChunkRef) bool { return a.ReplID == b.ReplID && a.Start == b.Start },
		func(r ChunkRef) uint64 { return r.Fence },
		func(prev, next ChunkRef) (bool, error) {
			return prev.ReplID == next.ReplID && next.Start <= prev.End, nil
		},
		func(a, b ChunkRef) (bool, error) { return a.ReplID == b.ReplID && a.End >= b.End, nil })
	return kept, late, held, err
}

// parseChunkKey reads a chunk's name; ok is false for anything else.
func parseChunkKey(info storage.ObjectInfo, prefix string) (ChunkRef, bool) {
	rest := strings.TrimPrefix(info.Key, prefix)
	replid, name, ok := strings.Cut(rest, "/")
	if !ok || !isReplID(replid) || strings.Contains(name, "/") {
		return ChunkRef{}, false
	}
	base, obj, ok := storage.ParseObjectName(info.Key, name, info.Size)
	if !ok {
		return ChunkRef{}, false
	}
	base, fence, ok := storage.CutFence(base)
	if !ok {
		return ChunkRef{}, false
	}
	f := strings.Split(base, "-")
	if len(f) == 3 {
		f = append(f, f[2]) // no seal time: sealed at its last command
	}
	if len(f) != 4 {
		return ChunkRef{}, false
	}
	var n [4]int64
	for i, x := range f {
		v, err := strconv.ParseInt(x, 10, 64)
		if err != nil || v < 0 {
			return ChunkRef{}, false
		}
		n[i] = v
	}
	if n[1] < n[0] || n[3] < n[2] {
		return ChunkRef{}, false
	}
	return ChunkRef{ReplID: replid, Start: n[0], End: n[1], LastMS: n[2], Sealed: time.UnixMilli(n[3]).UTC(), Fence: fence, Object: obj}, true
}

// Open returns a reader of a chunk's commands; its checksum is checked when
// the last one is read (Close reports a mismatch too).
func (c *Catalog) Open(ctx context.Context, ref ChunkRef) (*ChunkReader, io.Closer, error) {
	rc, err := c.Pipeline.Open(ctx, ref.Object)
	if err != nil {
		return nil, nil, err
	}
	cr, err := NewChunkReader(rc)
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("region %s: %s: %w", c.Pipeline.Region, ref.Object.Key, err)
	}
	h := cr.Header
	if h.ReplID != ref.ReplID || h.Start != ref.Start || h.End != ref.End {
		rc.Close()
		return nil, nil, fmt.Errorf("region %s: %s: its header says %s (%d, %d], not what its name says", c.Pipeline.Region, ref.Object.Key, h.ReplID, h.Start, h.End)
	}
	return cr, rc, nil
}

// ReadAll reads a whole chunk, checksum checked.
func (c *Catalog) ReadAll(ctx context.Context, ref ChunkRef) (ChunkHeader, []Command, error) {
	cr, closer, err := c.Open(ctx, ref)
	if err != nil {
		return ChunkHeader{}, nil, err
	}
	defer closer.Close()
	var cmds []Command
	for {
		cmd, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return cr.Header, nil, fmt.Errorf("region %s: %s: %w", c.Pipeline.Region, ref.Object.Key, err)
		}
		cmds = append(cmds, cmd)
	}
	return cr.Header, cmds, nil
}

// Position is where a region's stream ends: the offset after history
// ReplID's last stored chunk.
type Position struct {
	ReplID string
	End    int64
	// LastMS is when drd received that chunk's last command.
	LastMS int64
}

// End returns where the region's newest history ends; ok is false when the
// region holds no stream.
func (c *Catalog) End(ctx context.Context) (Position, bool, error) {
	refs, err := c.List(ctx)
	if err != nil {
		return Position{}, false, err
	}
	p, ok := EndOf(refs)
	return p, ok, nil
}

// EndOf is End over refs, a listing the caller made (List).
func EndOf(refs []ChunkRef) (Position, bool) {
	if len(refs) == 0 {
		return Position{}, false
	}
	var p Position
	for _, r := range refs {
		if r.LastMS >= p.LastMS {
			p = Position{ReplID: r.ReplID, End: r.End, LastMS: r.LastMS}
		}
	}
	return p, true
}
