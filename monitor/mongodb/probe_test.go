package mongodb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/monitor"
	mgmon "github.com/drkit/drkit/monitor/mongodb"
)

// On FerretDB (no replica sets): the primary is up and its heartbeat is
// read back; a server listed as a replica that is a primary itself is
// named as such; an unreachable replica is down with the reason.
func TestProbeOnFerretDB(t *testing.T) {
	ctx := context.Background()
	src := testenv.StartFerretDB(t)
	other := testenv.StartFerretDB(t)
	h, err := mgmon.NewHeartbeat("docs", "drkit_heartbeat", src.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	at := time.Now().Truncate(time.Millisecond)
	if err := h.Beat(ctx, at); err != nil {
		t.Fatal(err)
	}
	p, err := mgmon.NewProber("docs", "drkit_heartbeat", monitor.Server{Region: "a", DSN: src.URL()}, []monitor.Server{
		{Name: "standalone", Region: "b", DSN: other.URL()},
		{Name: "gone", Region: "c", DSN: "mongodb://127.0.0.1:1/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st := p.Probe(ctx)
	if len(st) != 3 || !st[0].Up || st[0].Error != "" {
		t.Fatalf("primary: %+v", st)
	}
	if !st[1].Up || st[1].InSync || !strings.Contains(st[1].Error, "writable primary itself") {
		t.Errorf("a standalone listed as a replica: %+v", st[1])
	}
	if st[2].Up || st[2].Error == "" {
		t.Errorf("an unreachable replica: %+v", st[2])
	}
}
