package postgres

import (
	"bytes"
	"testing"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/snapshots"
)

// goodManifest is a manifest as a backup writes it.
const goodManifest = `{
  "format_version": 2, "engine": "postgres", "cluster": "orders", "id": "20261204T120000Z",
  "system_identifier": "7312345678901234567", "server_version": "15", "timeline": 1,
  "start_lsn": "0/2000028", "stop_lsn": "0/2000138",
  "start_time": "2026-12-04T12:00:00Z", "stop_time": "2026-12-04T12:00:01Z",
  "wal_segment_size": 16777216, "wal_included": true, "archive_compression": "zstd",
  "plain_size": 31457792, "stored_size": 4194304,
  "chunks": [{"key": "orders/base/20261204T120000Z/chunk-00000.zst", "size": 4194304, "plain_size": 4194304,
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "compression": "none", "encryption": "none"}],
  "backup_manifest": {"key": "orders/base/20261204T120000Z/backup_manifest", "size": 300, "plain_size": 1200,
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "compression": "zstd", "encryption": "none"}
}`

// FuzzManifest: whatever a store holds under manifest.json, decoding and
// checking it never panics, and a manifest that passes the check holds only
// values a restore can use (sizes it may allocate, a segment size it may
// divide by, positions that parse, keys in the backup's folder).
func FuzzManifest(f *testing.F) {
	f.Add([]byte(goodManifest))
	f.Add([]byte(goodManifest[:len(goodManifest)/2]))
	f.Add(bytes.Replace([]byte(goodManifest), []byte(`"plain_size": 4194304`), []byte(`"plain_size": -1`), 1))
	f.Add(bytes.Replace([]byte(goodManifest), []byte(`"wal_segment_size": 16777216`), []byte(`"wal_segment_size": 0`), 1))
	f.Add(bytes.Replace([]byte(goodManifest), []byte(`"plain_size": 4194304`), []byte(`"plain_size": 9223372036854775807`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Manifest
		if err := snapshots.DecodeManifest(bytes.NewReader(data), &m); err != nil {
			return
		}
		if err := checkManifest(m); err != nil {
			return
		}
		if err := pgwal.CheckSegmentSize(m.WALSegmentSize); err != nil {
			t.Fatalf("accepted segment size %d", m.WALSegmentSize)
		}
		start, err1 := pgwal.ParseLSN(m.StartLSN)
		_, err2 := pgwal.ParseLSN(m.StopLSN)
		if err1 != nil || err2 != nil {
			t.Fatalf("accepted positions %q %q", m.StartLSN, m.StopLSN)
		}
		_ = pgwal.SegmentOf(m.Timeline, start, m.WALSegmentSize).Name(m.WALSegmentSize)
		for _, c := range append(m.Chunks, m.BackupManifest) {
			if c.PlainSize < 0 || c.PlainSize > maxChunkSize {
				t.Fatalf("accepted chunk size %d", c.PlainSize)
			}
		}
		_ = compareBackups(m, m)
	})
}
