package lease

import (
	"encoding/json"
	"testing"
)

// FuzzDecode: a lease object read from a store never panics the decoder,
// and what it accepts encodes back to the same record.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"holder":"drd-1","generation":3,"renewals":7,"ttl_ms":10000,"written":"2026-12-07T05:00:00Z"}`))
	f.Add([]byte(`{"holder":"","generation":3}`))
	f.Add([]byte(`{"holder":"x","generation":0}`))
	f.Add([]byte(`{"holder":"x","generation":1,"extra":true}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		if r.Holder != "" && r.Generation == 0 {
			t.Fatalf("accepted a holder at generation 0: %+v", r)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Decode(again)
		if err != nil || r2.Holder != r.Holder || r2.Generation != r.Generation || r2.Renewals != r.Renewals {
			t.Fatalf("round trip: %+v -> %s -> %+v %v", r, again, r2, err)
		}
	})
}
