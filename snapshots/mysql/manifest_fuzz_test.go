package mysql

import (
	"bytes"
	"testing"

	binlog "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/snapshots"
)

const goodManifest = `{"format_version": 2, "engine": "mysql", "flavor": "mariadb", "cluster": "shop", "id": "20261204T120000Z",
  "server_version": "10.11.6-MariaDB", "gtid_pos": "0-1-42", "snapshot_time": "2026-12-04T12:00:00Z",
  "start_time": "2026-12-04T12:00:00Z", "stop_time": "2026-12-04T12:00:02Z", "plain_size": 1000, "stored_size": 400,
  "part_compression": "zstd", "rows": 8,
  "schema": {"key": "shop/base/20261204T120000Z/schema.json", "size": 100, "plain_size": 300, "sha256": "00", "compression": "zstd", "encryption": "none"},
  "tables": [{"db": "shop", "name": "orders", "columns": [{"name": "id"}], "rows": 8, "plain_size": 700,
    "parts": [{"key": "shop/base/20261204T120000Z/t00000-00000", "size": 300, "plain_size": 300, "sha256": "00", "compression": "none", "encryption": "none"}]}]}`

// FuzzManifest: decoding and checking a stored snapshot manifest never
// panics, and one that passes holds a position that parses and parts of
// sizes a restore can read, in the snapshot's folder.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(goodManifest))
	f.Add([]byte(goodManifest[:len(goodManifest)/3]))
	f.Add(bytes.Replace([]byte(goodManifest), []byte(`"gtid_pos": "0-1-42"`), []byte(`"gtid_pos": "x"`), 1))
	f.Add(bytes.Replace([]byte(goodManifest), []byte(`t00000-00000`), []byte(`../../etc/passwd`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Manifest
		if err := snapshots.DecodeManifest(bytes.NewReader(data), &m); err != nil {
			return
		}
		if err := checkManifest(m); err != nil {
			return
		}
		if _, err := binlog.ParsePos(m.GTIDPos); err != nil {
			t.Fatalf("accepted position %q", m.GTIDPos)
		}
		for _, tp := range m.Tables {
			for _, p := range tp.Parts {
				if p.PlainSize > maxPartSize || p.Size < 0 || !bytes.HasPrefix([]byte(p.Key), []byte(baseKey(m.Cluster, m.ID))) {
					t.Fatalf("accepted part %+v", p)
				}
			}
		}
		_ = seqSum(m.GTIDPos)
	})
}
