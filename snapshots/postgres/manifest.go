package postgres

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// FormatVersion is the newest manifest format this code writes; it reads
// formats 1 and 2. Format 2 is a backup whose archive the server compressed
// (ArchiveCompression): a drkit that knows only format 1 refuses it by its
// version instead of unpacking zstd as tar. Backups whose chunks drkit
// compressed itself are still written as format 1.
const FormatVersion = 2

// Manifest describes one base backup in one region.
type Manifest struct {
	FormatVersion    int       `json:"format_version"`
	Engine           string    `json:"engine"`
	Cluster          string    `json:"cluster"`
	ID               string    `json:"id"`
	SystemIdentifier string    `json:"system_identifier"`
	ServerVersion    string    `json:"server_version"`
	Timeline         uint32    `json:"timeline"`
	StartLSN         string    `json:"start_lsn"`
	StopLSN          string    `json:"stop_lsn"`
	StartTime        time.Time `json:"start_time"`
	StopTime         time.Time `json:"stop_time"`
	WALSegmentSize   uint64    `json:"wal_segment_size"`
	WALIncluded      bool      `json:"wal_included"`
	// ArchiveCompression "zstd" says the server compressed the archive: the
	// chunks, in order, are one zstd stream of it, each stored without a
	// second compression and hashed as stored. Empty: each chunk is a slice
	// of the archive itself, compressed by its region's pipeline.
	ArchiveCompression string `json:"archive_compression,omitempty"`
	// PlainSize is the size of the archive (uncompressed).
	PlainSize      int64            `json:"plain_size"`
	StoredSize     int64            `json:"stored_size"`
	Chunks         []storage.Object `json:"chunks"`
	BackupManifest storage.Object   `json:"backup_manifest"`
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
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
		return fmt.Errorf("manifest format %d; this drkit reads 1 to %d (a newer drkit wrote it: restore with that version)", m.FormatVersion, FormatVersion)
	}
	if m.ArchiveCompression != "" && m.ArchiveCompression != "zstd" {
		return fmt.Errorf("archive compression %q; this drkit reads zstd", m.ArchiveCompression)
	}
	return nil
}

func writeManifest(ctx context.Context, st storage.Store, m Manifest) error {
	return snapshots.WriteManifest(ctx, st, m.Cluster, m.ID, m)
}
