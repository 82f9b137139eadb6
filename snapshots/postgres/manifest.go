package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// FormatVersion is the manifest format this code writes and reads.
const FormatVersion = 1

// Manifest describes one base backup in one region.
type Manifest struct {
	FormatVersion    int              `json:"format_version"`
	Engine           string           `json:"engine"`
	Cluster          string           `json:"cluster"`
	ID               string           `json:"id"`
	SystemIdentifier string           `json:"system_identifier"`
	ServerVersion    string           `json:"server_version"`
	Timeline         uint32           `json:"timeline"`
	StartLSN         string           `json:"start_lsn"`
	StopLSN          string           `json:"stop_lsn"`
	StartTime        time.Time        `json:"start_time"`
	StopTime         time.Time        `json:"stop_time"`
	WALSegmentSize   uint64           `json:"wal_segment_size"`
	WALIncluded      bool             `json:"wal_included"`
	PlainSize        int64            `json:"plain_size"`
	StoredSize       int64            `json:"stored_size"`
	Chunks           []storage.Object `json:"chunks"`
	BackupManifest   storage.Object   `json:"backup_manifest"`
}

var baseKey = snapshots.BaseKey

// ListBackups returns the complete backups (those with a manifest) of cluster in
// a region, oldest first.
func ListBackups(ctx context.Context, p *storage.Pipeline, cluster string) ([]Manifest, error) {
	var out []Manifest
	prefix := cluster + "/base/"
	for info, err := range p.Store.List(ctx, prefix) {
		if err != nil {
			return nil, fmt.Errorf("list backups of %s in region %s: %w", cluster, p.Region, err)
		}
		if !strings.HasSuffix(info.Key, "/manifest.json") {
			continue
		}
		m, err := readManifest(ctx, p, info.Key)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartTime.Before(out[j].StartTime) })
	return out, nil
}

func readManifest(ctx context.Context, p *storage.Pipeline, key string) (Manifest, error) {
	var m Manifest
	rc, err := p.Store.Get(ctx, key, 0, -1)
	if err != nil {
		return m, fmt.Errorf("region %s: %w", p.Region, err)
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return m, fmt.Errorf("region %s: %s is not a valid manifest: %w", p.Region, key, err)
	}
	if m.FormatVersion != FormatVersion {
		return m, fmt.Errorf("region %s: %s has manifest format %d; this drkit reads %d", p.Region, key, m.FormatVersion, FormatVersion)
	}
	return m, nil
}

func writeManifest(ctx context.Context, st storage.Store, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return st.Put(ctx, baseKey(m.Cluster, m.ID, "manifest.json"), strings.NewReader(string(b)+"\n"))
}
