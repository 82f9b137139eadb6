package snapshots

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/drkit/drkit/storage"
)

// A backup-set copy makes a region hold what another holds of a cluster: its
// cluster.json, its log objects (WAL, binlog) and its complete base backups,
// byte for byte (no decryption, no recompression). Order keeps the target
// consistent at every moment: the log first, then each backup's objects, then
// its manifest, so a backup never looks complete in the target before its
// objects and the log it needs are there. Objects the target already holds
// with the same bytes are skipped, so an interrupted copy resumes where it
// stopped when run again.

// LogLayout says where an engine keeps a cluster's log objects and which part
// of their names must not be held twice with different contents.
type LogLayout struct {
	// Dir is the log folder under the cluster ("wal", "binlog").
	Dir string
	// Slot returns the part of a log object's base name (ParseObjectName) that
	// identifies its place in the log. Two objects with the same slot and
	// different checksums are two histories; the copy refuses to mix them.
	Slot func(base string) string
}

// CopyOptions tune CopySet.
type CopyOptions struct {
	// Workers copy objects in parallel (default 4).
	Workers int
	// OnObject, if set, is called after each object is copied or skipped.
	OnObject func(storage.CopyResult)
	Log      *slog.Logger
}

// CopyReport says what a backup-set copy did.
type CopyReport struct {
	Cluster string `json:"cluster"`
	From    string `json:"from"`
	To      string `json:"to"`
	// Backups are the ids made complete in the target by this copy.
	Backups []string `json:"backups"`
	// BackupsPresent are the source's backups the target already had.
	BackupsPresent int `json:"backups_present"`
	// Incomplete are source backups without a manifest (running or failed), not copied.
	Incomplete []string `json:"incomplete,omitempty"`
	// Damaged are source backups whose manifest cannot be read (with the
	// problem): not copied, and the copy ends with an error naming them
	// once every other backup is copied.
	Damaged []Damaged `json:"damaged,omitempty"`
	// LogObjects are the log objects copied.
	LogObjects int `json:"log_objects"`
	// Copied and Skipped count objects copied and found already there.
	Copied  int     `json:"copied"`
	Skipped int     `json:"skipped"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// ErrNothingToCopy is returned when the source region holds nothing of the cluster.
var ErrNothingToCopy = errors.New("the source region holds nothing of this cluster")

// CopySet copies cluster's backup set from one region to another; see the
// comment above LogLayout.
func CopySet(ctx context.Context, cluster string, from, to *storage.Region, layout LogLayout, o CopyOptions) (CopyReport, error) {
	c := &setCopy{cluster: cluster, from: from, to: to, layout: layout, o: o, start: time.Now()}
	c.rep = CopyReport{Cluster: cluster, From: from.Name, To: to.Name}
	if c.o.Workers <= 0 {
		c.o.Workers = 4
	}
	if c.o.Log == nil {
		c.o.Log = slog.Default()
	}
	err := c.run(ctx)
	c.rep.Seconds = time.Since(c.start).Seconds()
	c.rep.Bytes = c.bytes.Load()
	c.rep.Copied, c.rep.Skipped = int(c.copied.Load()), int(c.skipped.Load())
	if err != nil {
		return c.rep, fmt.Errorf("copy %s from region %s to %s: %w", cluster, from.Name, to.Name, err)
	}
	return c.rep, nil
}

type setCopy struct {
	cluster  string
	from, to *storage.Region
	layout   LogLayout
	o        CopyOptions
	start    time.Time
	rep      CopyReport

	bytes           atomic.Int64
	copied, skipped atomic.Int32
}

func (c *setCopy) run(ctx context.Context) error {
	if err := c.checkEncryption(); err != nil {
		return err
	}
	info := c.cluster + "/cluster.json"
	if err := c.checkClusterInfo(ctx, info); err != nil {
		return err
	}
	end, err := BeginCopy(ctx, c.to.Store, c.cluster, c.from.Name)
	if err != nil {
		return err
	}
	defer end()
	if err := c.copyLog(ctx); err != nil {
		return err
	}
	if err := c.copyKeys(ctx, []string{info}); err != nil {
		return err
	}
	if err := c.copyBackups(ctx); err != nil {
		return err
	}
	if len(c.rep.Damaged) > 0 {
		var names []string
		for _, d := range c.rep.Damaged {
			names = append(names, d.ID()+" ("+d.Problem+")")
		}
		return fmt.Errorf("region %s: skipped damaged backup(s) %s; everything else was copied. Run drctl verify --region %s", c.from.Name, strings.Join(names, "; "), c.from.Name)
	}
	return nil
}

// checkEncryption refuses regions with different age recipients: a byte copy
// would leave the target holding objects its own identity cannot read.
func (c *setCopy) checkEncryption() error {
	names := func(p *storage.Pipeline) []string {
		var out []string
		for _, r := range p.Recipients {
			out = append(out, fmt.Sprint(r))
		}
		slices.Sort(out)
		return out
	}
	a, b := names(c.from.Pipeline), names(c.to.Pipeline)
	if !slices.Equal(a, b) {
		return fmt.Errorf("region %s encrypts to %s and region %s to %s: a copy keeps objects as they are (no decryption), so the target's identity could not read them; give both regions the same encryption recipients",
			c.from.Name, describeRecipients(a), c.to.Name, describeRecipients(b))
	}
	return nil
}

func describeRecipients(r []string) string {
	if len(r) == 0 {
		return "nobody (no encryption)"
	}
	return strings.Join(r, ", ")
}

// checkClusterInfo refuses a target whose cluster.json names another engine or
// database system under the same cluster name.
func (c *setCopy) checkClusterInfo(ctx context.Context, key string) error {
	src, err := readJSONMap(ctx, c.from.Store, key)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("region %s has no %s: %w", c.from.Name, key, ErrNothingToCopy)
	}
	if err != nil {
		return fmt.Errorf("region %s: %w", c.from.Name, err)
	}
	dst, err := readJSONMap(ctx, c.to.Store, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("region %s: %w", c.to.Name, err)
	}
	for _, field := range []string{"engine", "system_identifier"} {
		if a, b := fmt.Sprint(src[field]), fmt.Sprint(dst[field]); src[field] != nil && dst[field] != nil && a != b {
			return fmt.Errorf("region %s holds cluster %q with %s %s, region %s with %s %s: two different databases under one name; nothing was copied",
				c.from.Name, c.cluster, field, a, c.to.Name, field, b)
		}
	}
	return nil
}

func readJSONMap(ctx context.Context, st storage.Store, key string) (map[string]any, error) {
	rc, err := st.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var m map[string]any
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return nil, &notJSONError{key: key, err: err}
	}
	return m, nil
}

// notJSONError is an object that was read whole and is not JSON: damaged,
// as opposed to unreadable for now.
type notJSONError struct {
	key string
	err error
}

func (e *notJSONError) Error() string { return e.key + " is not valid JSON: " + e.err.Error() }
func (e *notJSONError) Unwrap() error { return e.err }

// copyLog copies the source's log objects the target lacks, after checking
// the two regions' logs are one history.
func (c *setCopy) copyLog(ctx context.Context) error {
	prefix := c.cluster + "/" + c.layout.Dir + "/"
	src, err := listObjects(ctx, c.from.Store, prefix)
	if err != nil {
		return fmt.Errorf("region %s: %w", c.from.Name, err)
	}
	dst, err := listObjects(ctx, c.to.Store, prefix)
	if err != nil {
		return fmt.Errorf("region %s: %w", c.to.Name, err)
	}
	if err := c.checkOneHistory(src, dst, prefix); err != nil {
		return err
	}
	var keys []string
	for _, info := range src {
		// A log object's name holds its plaintext's SHA-256: the same key
		// in the target is the same log, whatever its stored bytes.
		if _, ok := dst[info.Key]; !ok {
			keys = append(keys, info.Key)
		}
	}
	slices.Sort(keys)
	c.rep.LogObjects = len(keys)
	c.skipped.Add(int32(len(src) - len(keys)))
	c.o.Log.Info("copying log objects", "cluster", c.cluster, "from", c.from.Name, "to", c.to.Name, "objects", len(keys), "already_there", len(src)-len(keys))
	return c.copyKeys(ctx, keys)
}

// checkOneHistory refuses when the target holds, at the same place in the
// log, an object with other contents than the source's.
func (c *setCopy) checkOneHistory(src, dst map[string]storage.ObjectInfo, prefix string) error {
	held := map[string]storage.Object{} // slot -> the target's object there
	for key, info := range dst {
		if base, obj, ok := storage.ParseObjectName(key, strings.TrimPrefix(key, prefix), info.Size); ok {
			held[c.slot(base)] = obj
		}
	}
	for key, info := range src {
		base, obj, ok := storage.ParseObjectName(key, strings.TrimPrefix(key, prefix), info.Size)
		if !ok {
			continue
		}
		if other, found := held[c.slot(base)]; found && other.SHA256 != obj.SHA256 {
			return fmt.Errorf("region %s holds %s where region %s holds %s: the two regions hold different log histories at the same place (for MySQL: a region that drd began shipping to before the copy numbers its binlog chunks from that moment); nothing was copied. Copy into a region before drd ships to it, or clear the target's %s folder to replace it with the source's",
				c.to.Name, other.Key, c.from.Name, key, prefix)
		}
	}
	return nil
}

func (c *setCopy) slot(base string) string {
	if c.layout.Slot == nil {
		return base
	}
	return c.layout.Slot(base)
}

// copyBackups copies every complete source backup the target lacks: objects,
// a check against the manifest, then the manifest.
func (c *setCopy) copyBackups(ctx context.Context) error {
	prefix := c.cluster + "/base/"
	src, err := listObjects(ctx, c.from.Store, prefix)
	if err != nil {
		return fmt.Errorf("region %s: %w", c.from.Name, err)
	}
	byID := map[string][]string{}
	for key := range src {
		id, _, _ := strings.Cut(strings.TrimPrefix(key, prefix), "/")
		byID[id] = append(byID[id], key)
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		manifest := BaseKey(c.cluster, id, "manifest.json")
		if _, ok := src[manifest]; !ok {
			c.rep.Incomplete = append(c.rep.Incomplete, id)
			continue
		}
		if info, err := c.to.Store.Stat(ctx, manifest); err == nil && info.Size == src[manifest].Size {
			c.rep.BackupsPresent++
			continue
		}
		m, err := readJSONMap(ctx, c.from.Store, manifest)
		if bad := (*notJSONError)(nil); errors.As(err, &bad) {
			// One damaged backup must not keep the others from the region.
			c.rep.Damaged = append(c.rep.Damaged, Damaged{Key: manifest, Problem: bad.err.Error()})
			c.o.Log.Warn("a source backup's manifest is damaged; it is not copied", "cluster", c.cluster, "backup", id, "region", c.from.Name, "err", err)
			continue
		} else if err != nil {
			return fmt.Errorf("region %s: %w", c.from.Name, err)
		}
		if err := c.copyBackup(ctx, id, manifest, m, byID[id]); err != nil {
			return err
		}
		c.rep.Backups = append(c.rep.Backups, id)
	}
	return nil
}

func (c *setCopy) copyBackup(ctx context.Context, id, manifest string, m any, keys []string) error {
	keys = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == manifest })
	slices.Sort(keys)
	c.o.Log.Info("copying base backup", "cluster", c.cluster, "backup", id, "from", c.from.Name, "to", c.to.Name, "objects", len(keys)+1)
	if err := c.copyKeys(ctx, keys); err != nil {
		return fmt.Errorf("backup %s: %w", id, err)
	}
	if err := c.checkAgainstManifest(ctx, m); err != nil {
		return fmt.Errorf("backup %s: %w", id, err)
	}
	if err := c.copyKeys(ctx, []string{manifest}); err != nil {
		return fmt.Errorf("backup %s: %w", id, err)
	}
	return nil
}

// checkAgainstManifest makes sure the target holds every object the manifest
// lists, with the listed size, before the manifest makes the backup complete.
func (c *setCopy) checkAgainstManifest(ctx context.Context, m any) error {
	for _, obj := range manifestObjects(m) {
		info, err := c.to.Store.Stat(ctx, obj.Key)
		if err != nil {
			return fmt.Errorf("the manifest lists %s, which region %s lacks after the copy (is the source backup damaged? drctl verify --region %s): %w", obj.Key, c.to.Name, c.from.Name, err)
		}
		if info.Size != obj.Size {
			return fmt.Errorf("the manifest lists %s with %d bytes; region %s holds %d", obj.Key, obj.Size, c.to.Name, info.Size)
		}
	}
	return nil
}

// manifestObjects finds every {"key", "size", "sha256"} record in a decoded
// manifest, whatever the engine's layout.
func manifestObjects(v any) []storage.Object {
	var out []storage.Object
	switch t := v.(type) {
	case map[string]any:
		key, okKey := t["key"].(string)
		size, okSize := t["size"].(float64)
		if _, okSum := t["sha256"].(string); okKey && okSize && okSum && key != "" {
			out = append(out, storage.Object{Key: key, Size: int64(size)})
		}
		for _, child := range t {
			out = append(out, manifestObjects(child)...)
		}
	case []any:
		for _, child := range t {
			out = append(out, manifestObjects(child)...)
		}
	}
	return out
}

// copyKeys copies keys with the configured parallelism; the first error stops it.
func (c *setCopy) copyKeys(ctx context.Context, keys []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.o.Workers)
	var mu sync.Mutex
	for _, key := range keys {
		g.Go(func() error {
			res, err := storage.Copy(gctx, c.from.Store, c.to.Store, key)
			if err != nil {
				return err
			}
			if res.Skipped {
				c.skipped.Add(1)
			} else {
				c.copied.Add(1)
				c.bytes.Add(res.Size)
			}
			if c.o.OnObject != nil {
				mu.Lock()
				c.o.OnObject(res)
				mu.Unlock()
			}
			return nil
		})
	}
	return g.Wait()
}

func listObjects(ctx context.Context, st storage.Store, prefix string) (map[string]storage.ObjectInfo, error) {
	out := map[string]storage.ObjectInfo{}
	for info, err := range st.List(ctx, prefix) {
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		out[info.Key] = info
	}
	return out, nil
}
