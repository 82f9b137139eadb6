package redis_test

import (
	"context"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/internal/testenv"
	rdsnap "github.com/drkit/drkit/snapshots/redis"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/s3"
)

// regionExposure is one region's exposure as the shipper reports it.
type regionExposure struct {
	sh     func() *rdwal.Shipper
	region string
}

func (r regionExposure) Exposure(now time.Time) time.Duration {
	_, _, regions := r.sh().Progress(now)
	for _, p := range regions {
		if p.Region == r.region {
			return p.Exposure
		}
	}
	return 0
}

// catchingUp reports whether the shipper reports region as catching up.
func catchingUp(sh *rdwal.Shipper, region string) bool {
	_, _, regions := sh.Progress(time.Now())
	for _, p := range regions {
		if p.Region == region {
			return p.CatchingUp
		}
	}
	return false
}

// Region us (MinIO behind a proxy) is blocked (its store takes connections
// and answers nothing) under write load. Its queue fills and it falls
// behind alone; region eu keeps its exposure low throughout. Halfway, drd
// restarts: us cannot be read then, and eu ships anyway. Unblocked, us
// catches up on objects copied from eu, the stream takes it back, both
// regions verify clean, and a restore from us alone equals the source.
func TestRegionFallsBehindAlone(t *testing.T) {
	testenv.UseS3Credentials()
	ctx := context.Background()
	e := newEnv(t)
	m := testenv.StartMinIO(t)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(m.Endpoint, "http://"))
	srv := testenv.S3{Bucket: m.Bucket, Endpoint: "http://" + proxy.Addr, Region: "us-east-1"}
	st, err := storage.Open(ctx, srv.StoreURL("redis-outage"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.regions[1] = &storage.Region{Name: "us", Store: st, Pipeline: &storage.Pipeline{Store: st, Region: "us", Level: 1}}
	e.ship(t)
	e.c.Set(ctx, "before", 1, 0)
	e.waitShipped(t)

	var mu sync.Mutex
	var exposures []time.Duration
	var writes atomic.Int64
	sawBehind := false
	half := testenv.Outage(t) / 4
	load := func(d time.Duration) {
		sampling := testenv.SampleExposure(regionExposure{sh: func() *rdwal.Shipper { return e.sh }, region: "eu"})
		defer func() {
			mu.Lock()
			exposures = append(exposures, sampling.Stop()...)
			mu.Unlock()
		}()
		pad := strings.Repeat("w", 2000)
		for end := time.Now().Add(d); time.Now().Before(end); {
			p := e.c.Pipeline()
			for range 20 {
				n := writes.Add(1)
				p.Set(ctx, "k"+strconv.FormatInt(n, 10), pad, 0)
			}
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			sawBehind = sawBehind || catchingUp(e.sh, "us")
			time.Sleep(50 * time.Millisecond)
		}
	}
	proxy.AddToxic(t, "blocked", "timeout", "upstream", 1, `{"timeout":0}`)
	load(half)
	e.stop()
	began := time.Now()
	e.ship(t) // drd restarts while region us answers nothing
	t.Logf("restarted drd streams %s after the start, region us unreadable", time.Since(began).Round(time.Millisecond))
	load(half)
	want := offset(t, e.c)
	testenv.WaitFor(t, 10*time.Second, "region eu holds the stream", func() bool {
		return sawEnd(t, e.regions[0]) >= want
	})
	p99 := testenv.P99(exposures)
	t.Logf("blocked 2 × %s: region eu's exposure p99 %s over %d samples; %d keys written", half, p99, len(exposures), writes.Load())
	if bound := min(testenv.ExposureBound(t), half/2); p99 > bound {
		t.Errorf("region eu's exposure p99 %s > %s: the blocked region held it back", p99, bound)
	}
	if !sawBehind {
		t.Error("region us was never reported catching up")
	}

	proxy.RemoveToxic(t, "blocked")
	want = offset(t, e.c)
	testenv.WaitFor(t, 60*time.Second, "region us caught up and rejoined", func() bool {
		return !catchingUp(e.sh, "us") && e.sh.Durable().End >= want
	})
	for _, r := range e.regions {
		rep, err := rdsnap.Verify(ctx, r.Pipeline, "cache", true, nil)
		if err != nil || !rep.OK {
			t.Fatalf("verify region %s: %+v, %v", r.Name, rep, err)
		}
	}
	// Written after the rejoin: the stream itself carries it to us again.
	e.c.Set(ctx, "after", 1, 0)
	e.waitShipped(t)
	wantData := dataset(t, e.src)
	dst, _ := e.restore(t, 1, time.Time{}, "")
	if got := dataset(t, dst); !maps.Equal(got, wantData) {
		t.Fatalf("restore from region us differs in %d keys: %v", len(diff(got, wantData)), first(diff(got, wantData), 5))
	}
}

// sawEnd is where region r's stream ends (-1: none).
func sawEnd(t *testing.T, r *storage.Region) int64 {
	t.Helper()
	p, ok, err := (&rdwal.Catalog{Pipeline: r.Pipeline, Cluster: "cache"}).End(context.Background())
	if err != nil || !ok {
		return -1
	}
	return p.End
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }
