package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drkit/drkit/storage"
)

// Catalog names and finds one cluster's WAL in one region's store.
type Catalog struct {
	Pipeline *storage.Pipeline
	Cluster  string
}

// ClusterInfo is <cluster>/cluster.json: what every region records of the
// database system it holds, so that WAL of two systems is never mixed.
type ClusterInfo struct {
	Engine           string `json:"engine"`
	SystemIdentifier string `json:"system_identifier"`
	WALSegmentSize   uint64 `json:"wal_segment_size"`
	ServerVersion    string `json:"server_version,omitempty"`
}

func (c *Catalog) store() storage.Store { return c.Pipeline.Store }

func (c *Catalog) key(parts ...string) string {
	return c.Cluster + "/" + strings.Join(parts, "/")
}

// ReadInfo returns the region's cluster.json, or ErrNotFound.
func (c *Catalog) ReadInfo(ctx context.Context) (ClusterInfo, error) {
	var info ClusterInfo
	rc, err := c.store().Get(ctx, c.key("cluster.json"), 0, -1)
	if err != nil {
		return info, err
	}
	defer rc.Close()
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&info); err != nil {
		return info, fmt.Errorf("region %s: %s/cluster.json is not valid: %w", c.Pipeline.Region, c.Cluster, err)
	}
	if err := CheckSegmentSize(info.WALSegmentSize); err != nil {
		return info, fmt.Errorf("region %s: %s/cluster.json: %w", c.Pipeline.Region, c.Cluster, err)
	}
	return info, nil
}

// EnsureInfo writes cluster.json if the region has none, and refuses a region
// that holds another database system's WAL under this cluster's name.
func (c *Catalog) EnsureInfo(ctx context.Context, want ClusterInfo) error {
	have, err := c.ReadInfo(ctx)
	if err == nil {
		if have.SystemIdentifier != want.SystemIdentifier {
			return fmt.Errorf("region %s holds cluster %q of database system %s, but the server is system %s: a different database under the same cluster name; use another cluster name or clear the region's %s/ folder",
				c.Pipeline.Region, c.Cluster, have.SystemIdentifier, want.SystemIdentifier, c.Cluster)
		}
		return nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	b, _ := json.MarshalIndent(want, "", "  ")
	return c.store().Put(ctx, c.key("cluster.json"), strings.NewReader(string(b)+"\n"))
}

// PutSegment stores a complete segment.
func (c *Catalog) PutSegment(ctx context.Context, name string, data []byte) error {
	return c.putNamed(ctx, "wal", name, data)
}

// PutHistory stores a timeline history file.
func (c *Catalog) PutHistory(ctx context.Context, name string, data []byte) error {
	return c.putNamed(ctx, "wal", name, data)
}

// putNamed writes data through the pipeline to a temporary key and then under
// its final, checksum-bearing name: the name must carry the SHA-256, known only
// once the bytes are hashed, so hash first (cheap, in memory) and write once.
func (c *Catalog) putNamed(ctx context.Context, dir, name string, data []byte) error {
	obj := c.Pipeline.Describe(data)
	obj.Key = c.key(dir, name+"."+obj.SHA256+"."+storage.CodecExt(obj))
	_, err := c.Pipeline.PutBytes(ctx, obj, data)
	return err
}

// PutPartial stores bytes [from, to) of the open segment.
func (c *Catalog) PutPartial(ctx context.Context, segName string, from, to uint64, data []byte) error {
	obj := c.Pipeline.Describe(data)
	obj.Key = c.key("wal", segName+".partial", fmt.Sprintf("%08X-%08X.%s.%s", from, to, obj.SHA256, storage.CodecExt(obj)))
	_, err := c.Pipeline.PutBytes(ctx, obj, data)
	return err
}

// WALObject is one WAL object in a region: a complete segment, a partial chunk
// of one, or a history file.
type WALObject struct {
	Name     string // segment or history file name
	Segment  Segment
	Partial  bool
	From, To uint64 // byte range within the segment, for partial chunks
	History  bool
	Object   storage.Object
	ModTime  time.Time
}

// List returns the region's WAL objects, sorted by name (segments in WAL order,
// each segment's partial chunks after it by offset).
func (c *Catalog) List(ctx context.Context, segSize uint64) ([]WALObject, error) {
	prefix := c.key("wal") + "/"
	var out []WALObject
	for info, err := range c.store().List(ctx, prefix) {
		if err != nil {
			return nil, fmt.Errorf("list WAL of %s in region %s: %w", c.Cluster, c.Pipeline.Region, err)
		}
		rel := strings.TrimPrefix(info.Key, prefix)
		if w, ok := parseWALKey(info, rel, segSize); ok {
			out = append(out, w)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Partial != b.Partial {
			return !a.Partial
		}
		return a.From < b.From
	})
	return out, nil
}

func parseWALKey(info storage.ObjectInfo, rel string, segSize uint64) (WALObject, bool) {
	dir, file := path.Split(rel)
	if dir != "" { // <segment>.partial/<from>-<to>.<sha>.<codec>
		seg, ok := strings.CutSuffix(strings.TrimSuffix(dir, "/"), ".partial")
		if !ok || !IsSegmentName(seg) {
			return WALObject{}, false
		}
		rng, obj, ok := storage.ParseObjectName(info.Key, file, info.Size)
		from, to, found := strings.Cut(rng, "-")
		if !ok || !found {
			return WALObject{}, false
		}
		f, err1 := strconv.ParseUint(from, 16, 64)
		t, err2 := strconv.ParseUint(to, 16, 64)
		s, err3 := ParseSegmentName(seg, segSize)
		if err1 != nil || err2 != nil || err3 != nil || t <= f {
			return WALObject{}, false
		}
		obj.PlainSize = int64(t - f)
		return WALObject{Name: seg, Segment: s, Partial: true, From: f, To: t, Object: obj, ModTime: info.ModTime}, true
	}
	name, obj, ok := storage.ParseObjectName(info.Key, file, info.Size)
	if !ok {
		return WALObject{}, false
	}
	switch {
	case IsSegmentName(name):
		s, err := ParseSegmentName(name, segSize)
		if err != nil {
			return WALObject{}, false
		}
		obj.PlainSize = int64(segSize)
		return WALObject{Name: name, Segment: s, To: segSize, Object: obj, ModTime: info.ModTime}, true
	case IsHistoryName(name):
		return WALObject{Name: name, History: true, Object: obj, ModTime: info.ModTime}, true
	}
	return WALObject{}, false
}

// DurableEnd returns the end of the WAL that timeline tli holds in the region
// without a gap, counting from its oldest object: complete segments, and
// partial chunks of the segment after them that start where the WAL so far ends.
// It stops at the first gap; ok is false when the timeline has no WAL.
func DurableEnd(objs []WALObject, tli uint32, segSize uint64) (end LSN, ok bool) {
	for _, w := range objs {
		if w.History || w.Segment.TLI != tli {
			continue
		}
		segStart := w.Segment.Start(segSize)
		from, to := segStart+LSN(w.From), segStart+LSN(w.To)
		if !ok {
			if w.Partial && w.From != 0 {
				continue // a chunk without its segment's beginning cannot be replayed
			}
			end, ok = from, true
		}
		if from > end {
			break // a gap: what follows cannot be replayed from here
		}
		end = max(end, to)
	}
	return end, ok
}
