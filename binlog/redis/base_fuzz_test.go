package redis

import (
	"bytes"
	"strings"
	"testing"

	"github.com/drkit/drkit/snapshots"
)

// A base manifest is read from a store: decoding and CheckBase never panic,
// and a manifest they accept keeps its RDB inside its own folder.
func FuzzBaseManifest(f *testing.F) {
	f.Add([]byte(`{"format_version":1,"engine":"redis","cluster":"c","id":"20261204T120000.000Z","replid":"0123456789012345678901234567890123456789","offset":56,` +
		`"rdb":{"key":"c/base/20261204T120000.000Z/dump.rdb","size":10,"plain_size":20,"sha256":"00","compression":"zstd","encryption":"none"}}`))
	f.Add([]byte(`{"format_version":1,"engine":"redis","cluster":"c","id":"x","replid":"0123456789012345678901234567890123456789","offset":1,"rdb":{"key":"c/base/x/../../etc/passwd"}}`))
	f.Add([]byte(`{"format_version":1,"engine":"redis","offset":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Base
		if err := snapshots.DecodeManifest(bytes.NewReader(data), &b); err != nil {
			return
		}
		if CheckBase(b) != nil {
			return
		}
		if !strings.HasPrefix(b.RDB.Key, snapshots.BaseKey(b.Cluster, b.ID)) || strings.Contains(b.RDB.Key, "..") || b.Offset < 0 {
			t.Fatalf("accepted %+v", b)
		}
	})
}
