package snapshots

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/storage"
)

// Every engine keeps a base backup under <cluster>/base/<id>/, with its
// manifest.json written last: a backup without one is incomplete.

// BaseKey is the key of an object of backup id.
func BaseKey(cluster, id string, parts ...string) string {
	return cluster + "/base/" + id + "/" + strings.Join(parts, "/")
}

// NewBackupID names a backup started at: its UTC time to the millisecond,
// moved on by a millisecond while any region already holds objects under
// that id. Two backups started in one second (or one millisecond, from two
// hosts) must never share a folder: the second would replace the first's
// manifest and mix their parts.
func NewBackupID(ctx context.Context, regions []*storage.Region, cluster string, at time.Time) (string, error) {
	for range 1000 {
		id := at.UTC().Format("20060102T150405.000Z")
		taken := false
		for _, r := range regions {
			for _, err := range r.Store.List(ctx, BaseKey(cluster, id)) {
				if err != nil {
					return "", fmt.Errorf("region %s: look for backup %s: %w", r.Name, id, err)
				}
				taken = true
				break
			}
		}
		if !taken {
			return id, nil
		}
		at = at.Add(time.Millisecond)
	}
	return "", fmt.Errorf("no free backup id near %s in cluster %s", at.Format(time.RFC3339Nano), cluster)
}

// Expire applies keep to backups (oldest first): a backup stays if it is among
// the newest keep.Full or ended (stop) within keep.Window, either suffices; the
// newest always stays; with neither set all stay. The others are deleted
// unless dryRun. It returns the kept backups and the ids kept and expired.
func Expire[M any](ctx context.Context, st storage.Store, cluster string, backups []M, id func(M) string, stop func(M) time.Time,
	keep config.Retention, now time.Time, dryRun bool) (kept []M, keptIDs, expiredIDs []string, err error) {
	unset := keep.Full <= 0 && keep.Window <= 0
	for i, b := range backups {
		newest := i == len(backups)-1
		inCount := keep.Full > 0 && i >= len(backups)-keep.Full
		inWindow := keep.Window > 0 && now.Sub(stop(b)) <= time.Duration(keep.Window)
		if unset || newest || inCount || inWindow {
			kept, keptIDs = append(kept, b), append(keptIDs, id(b))
			continue
		}
		expiredIDs = append(expiredIDs, id(b))
		if !dryRun {
			if err := DeleteBackup(ctx, st, cluster, id(b)); err != nil {
				return kept, keptIDs, expiredIDs, err
			}
		}
	}
	return kept, keptIDs, expiredIDs, nil
}

// DeleteBackup removes a backup: its manifest first, so that a half-deleted
// backup never looks complete, then its objects.
func DeleteBackup(ctx context.Context, st storage.Store, cluster, id string) error {
	if err := st.Delete(ctx, BaseKey(cluster, id, "manifest.json")); err != nil {
		return fmt.Errorf("expire backup %s: %w", id, err)
	}
	var keys []string
	for info, err := range st.List(ctx, BaseKey(cluster, id)) {
		if err != nil {
			return fmt.Errorf("expire backup %s: %w", id, err)
		}
		keys = append(keys, info.Key)
	}
	if err := st.Delete(ctx, keys...); err != nil {
		return fmt.Errorf("expire backup %s: %w", id, err)
	}
	return nil
}

// ErrGap is wrapped by a restore refused because the region's log has a gap
// before the target (or, with no target, before its newest log): replaying
// to the gap would hand back a silently partial database.
var ErrGap = errors.New("log gap")

// Identified is a manifest: it knows its backup's id, which must be its
// folder's name.
type Identified interface{ BackupID() string }

// Damaged is a manifest.json that could not be read or checked: a region
// reports it and carries on with its other backups, so that one bad object
// never blocks the backups, verifies, status and restores of a whole region.
type Damaged struct {
	Key     string `json:"key"`
	Problem string `json:"problem"`
}

func (d Damaged) String() string { return d.Key + ": " + d.Problem }

// ID is the id of the backup the manifest belongs to: its folder's name.
func (d Damaged) ID() string { return path.Base(path.Dir(d.Key)) }

// DamagedNote is what a status row says of a region's damaged manifests, ""
// when there are none.
func DamagedNote(damaged []Damaged) string {
	if len(damaged) == 0 {
		return ""
	}
	return fmt.Sprintf("%d damaged backup manifest(s), skipped: %s (drctl verify names them)", len(damaged), damaged[0].Key)
}

// ListManifests reads every complete backup's manifest.json of cluster in a
// region into M; check refuses a manifest this code cannot read (format,
// engine, values out of range). A manifest that cannot be fetched, decoded or
// checked is returned in damaged, not as an error: the error is for a region
// that cannot be listed. The caller sorts.
func ListManifests[M Identified](ctx context.Context, p *storage.Pipeline, cluster string, check func(M) error) (out []M, damaged []Damaged, err error) {
	for info, err := range p.Store.List(ctx, cluster+"/base/") {
		if err != nil {
			return nil, nil, fmt.Errorf("list backups of %s in region %s: %w", cluster, p.Region, err)
		}
		if !strings.HasSuffix(info.Key, "/manifest.json") {
			continue
		}
		m, err := ReadManifest(ctx, p, info.Key, check)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			damaged = append(damaged, Damaged{Key: info.Key, Problem: err.Error()})
			continue
		}
		out = append(out, m)
	}
	return out, damaged, nil
}

// maxManifestSize bounds what a manifest read may allocate: a store is
// untrusted, and a real manifest of a thousand-table snapshot is well under it.
const maxManifestSize = 64 << 20

// ReadManifest reads one manifest.json into M and checks it.
func ReadManifest[M Identified](ctx context.Context, p *storage.Pipeline, key string, check func(M) error) (M, error) {
	var m M
	rc, err := p.Store.Get(ctx, key, 0, -1)
	if err != nil {
		return m, fmt.Errorf("region %s: %w", p.Region, err)
	}
	defer rc.Close()
	if err := DecodeManifest(io.LimitReader(rc, maxManifestSize), &m); err != nil {
		return m, fmt.Errorf("region %s: %s is not a valid manifest: %w", p.Region, key, err)
	}
	if err := check(m); err != nil {
		return m, fmt.Errorf("region %s: %s: %w", p.Region, key, err)
	}
	if id := path.Base(path.Dir(key)); m.BackupID() != id {
		return m, fmt.Errorf("region %s: %s: its id %q is not its folder's %q", p.Region, key, m.BackupID(), id)
	}
	return m, nil
}

// DecodeManifest decodes one JSON manifest: unknown fields are allowed (a
// newer drkit of the same format may add some), trailing data is not.
func DecodeManifest(r io.Reader, m any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(m); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the manifest")
	}
	return nil
}

// WriteManifest stores m as backup id's manifest.json: the last object a
// backup writes.
func WriteManifest(ctx context.Context, st storage.Store, cluster, id string, m any) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return st.Put(ctx, BaseKey(cluster, id, "manifest.json"), strings.NewReader(string(b)+"\n"))
}

// EnsureClusterInfo writes <cluster>/cluster.json ({"engine": engine})
// where it is missing, and refuses a region whose cluster.json names
// another engine under the same cluster name: the two would mix in one
// folder.
func EnsureClusterInfo(ctx context.Context, regions []*storage.Region, cluster, engine string) error {
	key := cluster + "/cluster.json"
	for _, r := range regions {
		rc, err := r.Store.Get(ctx, key, 0, 4096)
		if errors.Is(err, storage.ErrNotFound) {
			if err := r.Store.Put(ctx, key, strings.NewReader("{\n  \"engine\": \""+engine+"\"\n}\n")); err != nil {
				return fmt.Errorf("region %s: %w", r.Name, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("region %s: %w", r.Name, err)
		}
		var info struct {
			Engine string `json:"engine"`
		}
		err = json.NewDecoder(rc).Decode(&info)
		rc.Close()
		if err != nil || info.Engine != engine {
			return fmt.Errorf("region %s holds cluster %q of engine %q (%s): another database under the same cluster name; use another cluster name or clear the region's %s/ folder",
				r.Name, cluster, info.Engine, key, cluster)
		}
	}
	return nil
}

// Enter tells phase, if set, that a restore moved on to phase name (drills
// time each phase; see engine.Env.Phase).
func Enter(phase func(string), name string) {
	if phase != nil {
		phase(name)
	}
}
