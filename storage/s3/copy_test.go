package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
	"github.com/drkit/drkit/storage/storetest"
)

func mustPut(t *testing.T, s storage.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func mustEqual(t *testing.T, s storage.Store, key string, want []byte) {
	t.Helper()
	rc, err := s.Get(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatalf("get %s from %s: %v", key, s, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s in %s: %d bytes (%v), want the %d copied", key, s, len(got), err, len(want))
	}
}

func copyOK(t *testing.T, src, dst storage.Store, key string) storage.CopyResult {
	t.Helper()
	res, err := storage.Copy(context.Background(), src, dst, key)
	if err != nil {
		t.Fatalf("Copy %s: %v", key, err)
	}
	return res
}

func TestCopyBetweenRegions(t *testing.T) {
	a, b := &testenv.MinIO{}, &testenv.MinIO{}
	testenv.Start(t, a, b)
	src := freshStore(t, &a.S3, "", storetest.Options)
	dst := freshStore(t, &b.S3, "", storetest.Options)
	big := storetest.Data(20, 12<<20+3) // above the 6 MiB threshold: multipart
	mustPut(t, src, "base/big", big)

	res := copyOK(t, src, dst, "base/big")
	if res.ServerSide || res.Skipped || res.Size != int64(len(big)) {
		t.Fatalf("copy between two servers = %+v, want streamed", res)
	}
	mustEqual(t, dst, "base/big", big)
	if res := copyOK(t, src, dst, "base/big"); !res.Skipped {
		t.Fatalf("second copy = %+v, want skipped", res)
	}
	// A different object of the same size under the key is replaced, not skipped.
	other := storetest.Data(21, len(big))
	mustPut(t, dst, "base/big", other)
	if res := copyOK(t, src, dst, "base/big"); res.Skipped {
		t.Fatal("copy skipped an object whose bytes differ")
	}
	mustEqual(t, dst, "base/big", big)

	if _, err := storage.Copy(context.Background(), src, dst, "base/missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("copy of a missing key = %v, want ErrNotFound", err)
	}
}

func TestCopyServerSideWithinOneEndpoint(t *testing.T) {
	m := testenv.StartMinIO(t)
	src := freshStore(t, &m.S3, "", storetest.Options)
	dst := freshStore(t, &m.S3, "", storetest.Options)
	for _, tc := range []struct {
		key  string
		size int
	}{{"small/obj", 1 << 20}, {"big/obj with space+plus/ü", 12<<20 + 5}} {
		data := storetest.Data(uint64(tc.size), tc.size)
		mustPut(t, src, tc.key, data)
		res := copyOK(t, src, dst, tc.key)
		if !res.ServerSide {
			t.Fatalf("copy of %s within one endpoint = %+v, want server-side", tc.key, res)
		}
		mustEqual(t, dst, tc.key, data)
	}
}

func TestCopyBetweenFileAndS3(t *testing.T) {
	m := testenv.StartMinIO(t)
	s3store := freshStore(t, &m.S3, "", storetest.Options)
	local, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := storetest.Data(30, 9<<20)
	mustPut(t, local, "wal/seg", data)
	copyOK(t, local, s3store, "wal/seg")
	mustEqual(t, s3store, "wal/seg", data)
	back, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	copyOK(t, s3store, back, "wal/seg")
	mustEqual(t, back, "wal/seg", data)
	if res := copyOK(t, s3store, back, "wal/seg"); !res.Skipped {
		t.Fatalf("repeated copy to a file store = %+v, want skipped (by content)", res)
	}
}

// An interrupted streamed copy resumes: the parts already stored are not sent again.
func TestCopyResumes(t *testing.T) {
	a, b := &testenv.MinIO{}, &testenv.MinIO{}
	testenv.Start(t, a, b)
	src := freshStore(t, &a.S3, "", storetest.Options)
	data := storetest.Data(40, 5*storage.MinPartSize)
	mustPut(t, src, "backup/part", data)
	stateDir := t.TempDir()
	prefix := "resumecopy"
	open := func(ctx context.Context, onPart func(storage.PartEvent)) storage.Store {
		opts := storetest.Options
		opts.StateDir, opts.OnPart, opts.Concurrency = stateDir, onPart, 1
		s, err := storage.Open(ctx, b.StoreURL(prefix), opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx, cancel := context.WithCancel(context.Background())
	var parts atomic.Int32
	dst := open(ctx, func(storage.PartEvent) {
		if parts.Add(1) == 2 {
			cancel()
		}
	})
	if _, err := storage.Copy(ctx, src, dst, "backup/part"); err == nil {
		t.Fatal("the interrupted copy succeeded")
	}
	var resumed atomic.Int32
	dst = open(context.Background(), func(e storage.PartEvent) {
		if e.Resumed {
			resumed.Add(1)
		}
	})
	copyOK(t, src, dst, "backup/part")
	mustEqual(t, dst, "backup/part", data)
	if resumed.Load() < 2 {
		t.Fatalf("the resumed copy re-sent parts: %d reused, want at least 2", resumed.Load())
	}
}

func TestProbeSeesAServerGoDown(t *testing.T) {
	m := testenv.StartMinIO(t)
	s := freshStore(t, &m.S3, "", storetest.Options)
	if err := storage.Probe(context.Background(), s); err != nil {
		t.Fatalf("Probe of a running MinIO: %v", err)
	}
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := storage.Probe(context.Background(), s); err == nil {
		t.Fatal("Probe of a killed MinIO reported it up")
	}
}
