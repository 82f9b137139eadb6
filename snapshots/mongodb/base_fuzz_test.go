package mongodb

import (
	"bytes"
	"strings"
	"testing"

	"github.com/drkit/drkit/snapshots"
)

// A base manifest is read from a store: decoding and CheckBase never panic,
// and a manifest they accept keeps every collection's object inside its
// own folder.
func FuzzBaseManifest(f *testing.F) {
	f.Add([]byte(`{"format_version":1,"engine":"mongodb","cluster":"c","id":"20261206T120000.000Z","start_ts":7,"end_ts":9,"lookback_seconds":1,` +
		`"collections":[{"db":"app","name":"items","options":"{}","indexes":["{\"key\":{\"n\":1},\"name\":\"n_1\"}"],` +
		`"object":{"key":"c/base/20261206T120000.000Z/parts/000000.bson","size":10,"plain_size":20,"sha256":"00","compression":"zstd","encryption":"none"},"docs":1,"bytes":20}]}`))
	f.Add([]byte(`{"format_version":1,"engine":"mongodb","cluster":"c","id":"x","collections":[{"db":"a","name":"b","object":{"key":"c/base/x/parts/../../../etc/passwd"}}]}`))
	f.Add([]byte(`{"format_version":1,"engine":"mongodb","start_ts":9,"end_ts":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Base
		if err := snapshots.DecodeManifest(bytes.NewReader(data), &b); err != nil {
			return
		}
		if CheckBase(b) != nil {
			return
		}
		for _, c := range b.Collections {
			if !strings.HasPrefix(c.Object.Key, snapshots.BaseKey(b.Cluster, b.ID, "parts")+"/") || strings.Contains(c.Object.Key, "..") {
				t.Fatalf("accepted %+v", c)
			}
		}
		if b.End < b.Start {
			t.Fatalf("accepted %+v", b)
		}
	})
}
