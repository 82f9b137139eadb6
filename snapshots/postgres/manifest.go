package postgres

import (
	"context"
	"fmt"
	"sort"
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
	out, err := snapshots.ListManifests(ctx, p, cluster, checkManifest)
	sort.Slice(out, func(i, j int) bool { return out[i].StartTime.Before(out[j].StartTime) })
	return out, err
}

func checkManifest(m Manifest) error {
	if m.FormatVersion != FormatVersion {
		return fmt.Errorf("manifest format %d; this drkit reads %d", m.FormatVersion, FormatVersion)
	}
	return nil
}

func writeManifest(ctx context.Context, st storage.Store, m Manifest) error {
	return snapshots.WriteManifest(ctx, st, m.Cluster, m.ID, m)
}
