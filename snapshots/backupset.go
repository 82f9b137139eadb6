package snapshots

import (
	"context"
	"encoding/json"
	"fmt"
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

// ListManifests reads every complete backup's manifest.json of cluster in a
// region into M; check refuses a manifest this code cannot read (format,
// engine). The caller sorts.
func ListManifests[M any](ctx context.Context, p *storage.Pipeline, cluster string, check func(M) error) ([]M, error) {
	var out []M
	for info, err := range p.Store.List(ctx, cluster+"/base/") {
		if err != nil {
			return nil, fmt.Errorf("list backups of %s in region %s: %w", cluster, p.Region, err)
		}
		if !strings.HasSuffix(info.Key, "/manifest.json") {
			continue
		}
		m, err := ReadManifest(ctx, p, info.Key, check)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// ReadManifest reads one manifest.json into M and checks it.
func ReadManifest[M any](ctx context.Context, p *storage.Pipeline, key string, check func(M) error) (M, error) {
	var m M
	rc, err := p.Store.Get(ctx, key, 0, -1)
	if err != nil {
		return m, fmt.Errorf("region %s: %w", p.Region, err)
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return m, fmt.Errorf("region %s: %s is not a valid manifest: %w", p.Region, key, err)
	}
	if err := check(m); err != nil {
		return m, fmt.Errorf("region %s: %s: %w", p.Region, key, err)
	}
	return m, nil
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
