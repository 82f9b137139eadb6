package drill

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzDecodeReport: a report read back from the jobs region (untrusted)
// decodes or is refused, never panics, and a decoded one names its
// cluster, region and start.
func FuzzDecodeReport(f *testing.F) {
	good, _ := json.Marshal(Report{Cluster: "orders", Engine: "postgres", Region: "eu", Started: time.Unix(1796600000, 0).UTC(),
		OK: true, Phases: []Phase{{Name: "restore", Seconds: 1.5}}, RTOSeconds: 2, RPOSeconds: 0.5, BytesFetched: 1 << 20})
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"cluster":"c","region":"r","started":"not a time"}`))
	f.Add([]byte(`{"cluster":"c","region":"r","started":"2026-12-07T00:00:00Z","restore":{"x":[1,2,3]},"phases":null}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := DecodeReport(b)
		if err == nil && (rep.Cluster == "" || rep.Region == "" || rep.Started.IsZero()) {
			t.Fatalf("accepted a report without cluster, region or start: %+v", rep)
		}
	})
}
