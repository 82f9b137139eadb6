package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/storetest"
)

// faultyStore opens a store that reaches MinIO through a toxiproxy.
func faultyStore(t *testing.T) (storage.Store, *testenv.Proxy) {
	t.Helper()
	minio := testenv.StartMinIO(t)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(minio.Endpoint, "http://"))
	srv := minio.S3
	srv.Endpoint = "http://" + proxy.Addr
	s := freshStore(t, &srv, "", storage.Options{PartSize: storage.MinPartSize, Threshold: storage.MinPartSize, Concurrency: 3})
	return s, proxy
}

// putAndCheck puts data under key; the put may fail, but if it succeeds the object
// must be byte-exact, and if it fails no object (or the previous one) may be there.
func putAndCheck(t *testing.T, s storage.Store, key string, data []byte) error {
	t.Helper()
	ctx := context.Background()
	err := s.Put(ctx, key, bytes.NewReader(data))
	rc, gerr := s.Get(ctx, key, 0, -1)
	if err != nil {
		if gerr == nil {
			rc.Close()
			t.Fatalf("Put failed (%v) yet an object is stored under %s", err, key)
		}
		if !errors.Is(gerr, storage.ErrNotFound) {
			t.Logf("after the failed put, Get also failed: %v", gerr)
		}
		return err
	}
	if gerr != nil {
		t.Fatalf("Put succeeded but Get failed: %v", gerr)
	}
	defer rc.Close()
	got, rerr := io.ReadAll(rc)
	if rerr != nil || !bytes.Equal(got, data) {
		t.Fatalf("Put succeeded but the object is corrupt: %d bytes of %d (%v)", len(got), len(data), rerr)
	}
	return nil
}

func TestFaultLatency(t *testing.T) {
	s, proxy := faultyStore(t)
	proxy.AddToxic(t, "latency-down", "latency", "downstream", 1, `{"latency": 150, "jitter": 50}`)
	proxy.AddToxic(t, "latency-up", "latency", "upstream", 1, `{"latency": 150, "jitter": 50}`)
	if err := putAndCheck(t, s, "latency", storetest.Data(10, 12<<20)); err != nil {
		t.Fatalf("latency alone must not fail a put: %v", err)
	}
}

// Connections cut part-way through a request are retried; the object is exact.
func TestFaultResetsMidPart(t *testing.T) {
	s, proxy := faultyStore(t)
	// A third of connections are closed after 1 MiB from the client: inside a part.
	proxy.AddToxic(t, "cut", "limit_data", "upstream", 0.33, `{"bytes": 1048576}`)
	if err := putAndCheck(t, s, "resets", storetest.Data(11, 16<<20)); err != nil {
		t.Logf("put failed after retries (allowed): %v", err)
	}
	proxy.RemoveToxic(t, "cut")
	proxy.AddToxic(t, "reset", "reset_peer", "upstream", 0.25, `{"timeout": 200}`)
	if err := putAndCheck(t, s, "resets2", storetest.Data(12, 16<<20)); err != nil {
		t.Logf("put failed after retries (allowed): %v", err)
	}
}

// A 30 s outage in the middle of an upload: the put rides it out or fails; it
// never leaves a corrupt object.
func TestFaultOutage30s(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the outage test takes 30 s")
	}
	s, proxy := faultyStore(t)
	proxy.AddToxic(t, "slow", "bandwidth", "upstream", 1, `{"rate": 4096}`) // 4 MiB/s: the put spans the outage
	time.AfterFunc(time.Second, func() {
		proxy.Down()
		time.AfterFunc(30*time.Second, func() { proxy.Up(t) })
	})
	began := time.Now()
	err := putAndCheck(t, s, "outage", storetest.Data(13, 20<<20))
	t.Logf("put across a 30 s outage: err=%v after %s", err, time.Since(began).Round(time.Second))
	if err == nil && time.Since(began) < 30*time.Second {
		t.Fatal("the put finished before the outage ended: the outage did not hit it")
	}
}
