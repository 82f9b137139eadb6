package storage_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

func TestInstrumentCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := storage.NewMetrics(reg)
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := m.Instrument(st, "eu-west-1")
	ctx := context.Background()
	if err := s.Put(ctx, "a", strings.NewReader("12345")); err != nil { // sized
		t.Fatal(err)
	}
	if err := s.Put(ctx, "b", io.MultiReader(strings.NewReader("123"))); err != nil { // unsized
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "a", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(rc)
	rc.Close()
	if _, err := s.Get(ctx, "missing", 0, -1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	_ = s.Put(ctx, "../bad", strings.NewReader("x"))

	expect := `
# HELP drkit_store_put_bytes_total Bytes written to a region's store.
# TYPE drkit_store_put_bytes_total counter
drkit_store_put_bytes_total{region="eu-west-1"} 8
# HELP drkit_store_put_objects_total Objects written to a region's store.
# TYPE drkit_store_put_objects_total counter
drkit_store_put_objects_total{region="eu-west-1"} 2
# HELP drkit_store_get_bytes_total Bytes read from a region's store.
# TYPE drkit_store_get_bytes_total counter
drkit_store_get_bytes_total{region="eu-west-1"} 5
# HELP drkit_errors_total Errors by kind (for example store_put, store_get), cluster and region.
# TYPE drkit_errors_total counter
drkit_errors_total{cluster="",kind="store_put",region="eu-west-1"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expect),
		"drkit_store_put_bytes_total", "drkit_store_put_objects_total", "drkit_store_get_bytes_total", "drkit_errors_total"); err != nil {
		t.Fatal(err)
	}
	// Two writes succeeded (the third was refused): two observations.
	if n := testutil.CollectAndCount(reg, "drkit_store_put_seconds"); n != 1 {
		t.Fatalf("drkit_store_put_seconds has %d series, want 1 (region eu-west-1)", n)
	}
	if got := histogramCount(t, reg, "drkit_store_put_seconds"); got != 2 {
		t.Fatalf("drkit_store_put_seconds counted %d writes, want 2", got)
	}
	if storage.Unwrap(s) != storage.Store(st) {
		t.Fatal("Unwrap does not reach the file store")
	}
}

func TestProbe(t *testing.T) {
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := storage.Probe(context.Background(), st); err != nil {
		t.Fatalf("Probe of a working store: %v", err)
	}
}

// histogramCount returns the sample count of the one series of the
// histogram name in reg.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no single series of %s", name)
	return 0
}
