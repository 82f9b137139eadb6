package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	pgwal "github.com/drkit/drkit/binlog/postgres"
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
	// Fence is the lease generation of the drd that took the backup
	// (drd.ha), 0 without a lease: the fencing token of what it writes.
	Fence uint64 `json:"fence,omitempty"`
}

var baseKey = snapshots.BaseKey

// BackupID is the backup's id (snapshots.Identified).
func (m Manifest) BackupID() string { return m.ID }

// ListBackups returns the complete backups (those with a manifest) of cluster in
// a region, oldest first, and the manifests it could not read or check.
//
// Oldest first means by WAL position: (timeline, start LSN). The id and the
// times come from the clock of the host that took a backup, and a host with a
// fast clock must not make an older backup look newer to restore or prune.
func ListBackups(ctx context.Context, p *storage.Pipeline, cluster string) ([]Manifest, []snapshots.Damaged, error) {
	out, damaged, err := snapshots.ListManifests(ctx, p, cluster, checkManifest)
	slices.SortStableFunc(out, compareBackups)
	return out, damaged, err
}

// compareBackups orders backups by WAL position. Manifests are checked before
// they are sorted, so their LSNs parse.
func compareBackups(a, b Manifest) int {
	if c := cmp.Compare(a.Timeline, b.Timeline); c != 0 {
		return c
	}
	sa, _ := pgwal.ParseLSN(a.StartLSN)
	sb, _ := pgwal.ParseLSN(b.StartLSN)
	if c := cmp.Compare(sa, sb); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// maxChunkSize bounds one chunk's size: a restore holds whole chunks in
// memory, and a manifest is untrusted input (backups cut 32 MiB chunks).
const maxChunkSize = 1 << 30

// checkManifest refuses a manifest this code cannot read or that is out of
// range: everything a restore later trusts (sizes it allocates, positions it
// replays from, keys it reads) is checked here, once.
func checkManifest(m Manifest) error {
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
		return fmt.Errorf("manifest format %d; this drkit reads 1 to %d (a newer drkit wrote it: restore with that version)", m.FormatVersion, FormatVersion)
	}
	if m.Engine != "" && m.Engine != "postgres" {
		return fmt.Errorf("a %s manifest, not postgres", m.Engine)
	}
	if m.ArchiveCompression != "" && m.ArchiveCompression != "zstd" {
		return fmt.Errorf("archive compression %q; this drkit reads zstd", m.ArchiveCompression)
	}
	if m.ID == "" || m.Timeline == 0 {
		return fmt.Errorf("no id or timeline (id %q, timeline %d)", m.ID, m.Timeline)
	}
	if err := pgwal.CheckSegmentSize(m.WALSegmentSize); err != nil {
		return err
	}
	start, err1 := pgwal.ParseLSN(m.StartLSN)
	stop, err2 := pgwal.ParseLSN(m.StopLSN)
	if err1 != nil || err2 != nil || stop < start {
		return fmt.Errorf("start LSN %q and stop LSN %q are not a range", m.StartLSN, m.StopLSN)
	}
	if m.PlainSize < 0 || m.StoredSize < 0 {
		return fmt.Errorf("negative size (plain %d, stored %d)", m.PlainSize, m.StoredSize)
	}
	prefix := baseKey(m.Cluster, m.ID)
	for i, obj := range append(slices.Clone(m.Chunks), m.BackupManifest) {
		if err := checkObject(obj, prefix); err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
	}
	return nil
}

// checkObject refuses an object record outside the backup's own folder or
// with sizes a restore cannot hold.
func checkObject(obj storage.Object, prefix string) error {
	if !strings.HasPrefix(obj.Key, prefix) || strings.Contains(obj.Key, "..") {
		return fmt.Errorf("key %q is not in the backup's folder %s", obj.Key, prefix)
	}
	if obj.PlainSize < 0 || obj.PlainSize > maxChunkSize || obj.Size < 0 {
		return fmt.Errorf("%s: size %d (plain %d) is out of range", obj.Key, obj.Size, obj.PlainSize)
	}
	return nil
}

func writeManifest(ctx context.Context, st storage.Store, m Manifest) error {
	return snapshots.WriteManifest(ctx, st, m.Cluster, m.ID, m)
}
