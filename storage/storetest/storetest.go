// Package storetest is the conformance suite every storage.Store adapter must pass,
// against a real backend (a folder, MinIO, versitygw), as restic's backend tests
// and Litestream's replica-client tests do.
//
// Call Run from an adapter's test with a function that returns a fresh, empty
// store opened with Options (small part sizes, so multipart paths run on MiB, not
// GiB). Imported by tests only.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/drkit/drkit/storage"
)

// Options are the upload settings the suite expects its stores to be opened with:
// 5 MiB parts (S3's minimum) and a 6 MiB threshold, so 12 MiB goes multipart.
var Options = storage.Options{PartSize: storage.MinPartSize, Threshold: 6 << 20, Concurrency: 3}

// Data returns n deterministic pseudo-random bytes for seed.
func Data(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	_, _ = r.Read(b)
	return b
}

// Run runs the suite; open must return a fresh, empty store for each call.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, open(t)) })
	t.Run("Range", func(t *testing.T) { testRange(t, open(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, open(t)) })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, open(t)) })
	t.Run("FailedPutLeavesNothing", func(t *testing.T) { testFailedPut(t, open(t)) })
	t.Run("List", func(t *testing.T) { testList(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, open(t)) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, open(t)) })
	t.Run("PutIfAbsent", func(t *testing.T) { testPutIfAbsent(t, open(t)) })
	t.Run("Swap", func(t *testing.T) { testSwap(t, open(t)) })
}

// unsized hides a reader's Size so the store sees a stream of unknown length.
type unsized struct{ r io.Reader }

func (u unsized) Read(p []byte) (int, error) { return u.r.Read(p) }

func put(t *testing.T, s storage.Store, key string, r io.Reader) {
	t.Helper()
	if err := s.Put(context.Background(), key, r); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func get(t *testing.T, s storage.Store, key string, off, n int64) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key, off, n)
	if err != nil {
		t.Fatalf("Get %s [%d,+%d): %v", key, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func same(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes (sha256 %x), want %d bytes (sha256 %x)", what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

func testRoundTrip(t *testing.T, s storage.Store) {
	cases := []struct {
		name  string
		size  int
		sized bool
	}{
		{"empty", 0, true},
		{"empty-stream", 0, false},
		{"one-byte", 1, true},
		{"small-stream", 4096, false},
		{"one-part-exactly", storage.MinPartSize, false},
		{"under-threshold", 6 << 20, true},
		{"multipart-sized", 12<<20 + 7, true},
		{"multipart-stream", 12<<20 + 7, false},
	}
	for i, tc := range cases {
		data := Data(uint64(i), tc.size)
		var r io.Reader = bytes.NewReader(data)
		if !tc.sized {
			r = unsized{r}
		}
		key := "roundtrip/" + tc.name
		put(t, s, key, r)
		same(t, tc.name, get(t, s, key, 0, -1), data)
		info, err := s.Stat(context.Background(), key)
		if err != nil || info.Size != int64(tc.size) || info.Key != key {
			t.Fatalf("Stat %s = %+v, %v; want size %d", key, info, err, tc.size)
		}
	}
}

func testRange(t *testing.T, s storage.Store) {
	data := Data(42, 100000)
	put(t, s, "range/obj", bytes.NewReader(data))
	for _, r := range []struct{ off, n int64 }{{0, 1}, {0, 100000}, {1, -1}, {99999, 1}, {5000, 12345}, {99990, 100}, {100000, -1}, {50000, 0}} {
		want := data[r.off:]
		if r.n >= 0 && r.n < int64(len(want)) {
			want = want[:r.n]
		}
		same(t, fmt.Sprintf("range [%d,+%d)", r.off, r.n), get(t, s, "range/obj", r.off, r.n), want)
	}
	if rc, err := s.Get(context.Background(), "range/obj", 100001, -1); err == nil {
		rc.Close()
		t.Fatal("Get with offset past the end succeeded")
	}
}

func testNotFound(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "missing/key", 0, -1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get missing: %v, want ErrNotFound", err)
	} else if !strings.Contains(err.Error(), "missing/key") {
		t.Errorf("not-found error does not name the key: %v", err)
	}
	if _, err := s.Stat(ctx, "missing/key"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat missing: %v, want ErrNotFound", err)
	}
	put(t, s, "dir/file", strings.NewReader("x"))
	if _, err := s.Stat(ctx, "dir"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat of a key's parent: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "dir/file/below"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat below an object: %v, want ErrNotFound", err)
	}
}

func testOverwrite(t *testing.T, s storage.Store) {
	put(t, s, "ow/k", strings.NewReader("first version, longer"))
	put(t, s, "ow/k", strings.NewReader("second"))
	same(t, "overwritten", get(t, s, "ow/k", 0, -1), []byte("second"))
	big := Data(7, 11<<20)
	put(t, s, "ow/k", unsized{bytes.NewReader(big)})
	same(t, "overwritten by multipart", get(t, s, "ow/k", 0, -1), big)
}

// testPutIfAbsent: an exclusive create wins once; of writers racing for one
// key exactly one wins and the object holds its bytes.
func testPutIfAbsent(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := storage.PutIfAbsent(ctx, s, "lease/a", strings.NewReader("first")); err != nil {
		t.Fatalf("PutIfAbsent of a free key: %v", err)
	}
	err := storage.PutIfAbsent(ctx, s, "lease/a", strings.NewReader("second"))
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("PutIfAbsent of a taken key: got %v, want ErrExists", err)
	}
	same(t, "after a refused create", get(t, s, "lease/a", 0, -1), []byte("first"))

	const writers = 8
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			errs <- storage.PutIfAbsent(ctx, s, "lease/race", strings.NewReader(fmt.Sprintf("writer %d", i)))
		}()
	}
	won := 0
	for range writers {
		switch err := <-errs; {
		case err == nil:
			won++
		case !errors.Is(err, storage.ErrExists):
			t.Fatalf("racing PutIfAbsent: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing writers won the key, want exactly 1", won, writers)
	}
	if got := string(get(t, s, "lease/race", 0, -1)); !strings.HasPrefix(got, "writer ") {
		t.Fatalf("the raced key holds %q", got)
	}
}

// failing yields n bytes then an error, as a dying source would.
type failing struct {
	r io.Reader
	n int
}

func (f *failing) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("source broke")
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func testFailedPut(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, n := range []int{1000, 11 << 20} { // single put, and multipart
		key := fmt.Sprintf("fail/%d", n)
		if err := s.Put(ctx, key, &failing{bytes.NewReader(Data(1, 20<<20)), n}); err == nil {
			t.Fatalf("Put from a failing reader (%d bytes) succeeded", n)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after a failed Put of %s, Stat = %v; want ErrNotFound (no partial object)", key, err)
		}
		put(t, s, key, strings.NewReader("old"))
		if err := s.Put(ctx, key, &failing{bytes.NewReader(Data(1, 20<<20)), n}); err == nil {
			t.Fatal("Put from a failing reader succeeded")
		}
		same(t, "object after a failed overwrite", get(t, s, key, 0, -1), []byte("old"))
	}
}

func listKeys(t *testing.T, s storage.Store, prefix string) []string {
	t.Helper()
	var keys []string
	for info, err := range s.List(context.Background(), prefix) {
		if err != nil {
			t.Fatalf("List %q: %v", prefix, err)
		}
		keys = append(keys, info.Key)
	}
	return keys
}

func testList(t *testing.T, s storage.Store) {
	ctx := context.Background()
	var want []string
	// 1,050 keys: more than one S3 page (1,000).
	for i := range 1050 {
		k := fmt.Sprintf("list/many/%05d", i)
		want = append(want, k)
		put(t, s, k, strings.NewReader("v"))
	}
	// Keys that sort around a folder boundary: "a-b" < "a/x" < "a0" in byte order.
	for _, k := range []string{"list/mix/a/x", "list/mix/a-b", "list/mix/a0", "list/mix/a/y/z", "list/mix/b"} {
		put(t, s, k, strings.NewReader("v"))
	}
	got := listKeys(t, s, "list/many/")
	if !slices.Equal(got, want) {
		t.Fatalf("List list/many/ returned %d keys (first %v), want %d in order", len(got), got[:min(3, len(got))], len(want))
	}
	mix := listKeys(t, s, "list/mix/")
	if !slices.IsSorted(mix) || len(mix) != 5 {
		t.Fatalf("List list/mix/ = %v, want 5 keys in lexical order", mix)
	}
	if got := listKeys(t, s, "list/mix/a"); len(got) != 4 {
		t.Fatalf("List with a partial name list/mix/a = %v, want the 4 keys starting with it", got)
	}
	if got := listKeys(t, s, "list/many/0104"); !slices.Equal(got, want[1040:1050]) {
		t.Fatalf("List list/many/0104 = %v", got)
	}
	if got := listKeys(t, s, "list/none/"); len(got) != 0 {
		t.Fatalf("List of an empty prefix = %v", got)
	}
	// Stopping early must work (iterator contract).
	n := 0
	for _, err := range s.List(ctx, "list/many/") {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	info := slices.Collect(func(yield func(storage.ObjectInfo) bool) {
		for i, err := range s.List(ctx, "list/mix/b") {
			if err != nil || !yield(i) {
				return
			}
		}
	})
	if len(info) != 1 || info[0].Size != 1 || info[0].ModTime.IsZero() {
		t.Fatalf("List info = %+v, want size 1 and a time", info)
	}
}

func testDelete(t *testing.T, s storage.Store) {
	ctx := context.Background()
	var keys []string
	for i := range 30 {
		k := fmt.Sprintf("del/%d/obj", i)
		keys = append(keys, k)
		put(t, s, k, strings.NewReader("v"))
	}
	put(t, s, "del-keep", strings.NewReader("v"))
	if err := s.Delete(ctx, append(keys, "del/never-existed")...); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := listKeys(t, s, "del/"); len(got) != 0 {
		t.Fatalf("after Delete, List del/ = %v", got)
	}
	if _, err := s.Stat(ctx, "del-keep"); err != nil {
		t.Fatalf("Delete removed a key it was not given: %v", err)
	}
	if err := s.Delete(ctx); err != nil {
		t.Fatalf("Delete of nothing: %v", err)
	}
}

func testKeys(t *testing.T, s storage.Store) {
	ctx := context.Background()
	good := []string{
		"keys/ünïcödé/日本語/🙂.txt",
		"keys/with space/a b c.txt",
		"keys/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/deep",
		"keys/sym+bols=&$@,;:!'()*[]~.txt",
		"keys/.hidden",
		"keys/" + strings.Repeat("x", 200),
	}
	for i, k := range good {
		data := []byte(fmt.Sprintf("value %d", i))
		put(t, s, k, bytes.NewReader(data))
		same(t, k, get(t, s, k, 0, -1), data)
	}
	if got := listKeys(t, s, "keys/"); len(got) != len(good) {
		t.Fatalf("List keys/ = %q, want %d keys", got, len(good))
	}
	for _, k := range []string{"", "/abs", "../escape", "a/../../escape", "a//b", "a/./b", "trailing/", "nul\x00byte", `back\slash`} {
		if err := s.Put(ctx, k, strings.NewReader("x")); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Put %q = %v, want ErrInvalidKey", k, err)
		}
		if _, err := s.Get(ctx, k, 0, -1); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Get %q = %v, want ErrInvalidKey", k, err)
		}
	}
}

// ReadObject reads obj back through p, which checks its SHA-256 and sizes,
// and fails the test on any error.
func ReadObject(tb testing.TB, p *storage.Pipeline, obj storage.Object) []byte {
	tb.Helper()
	rc, err := p.Open(context.Background(), obj)
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatalf("read %s: %v", obj.Key, err)
	}
	return b
}

// testSwap: PutIfVersion replaces an object only while it is the version
// read; of racing writers holding one version exactly one wins; a gone
// object is a changed one.
func testSwap(t *testing.T, s storage.Store) {
	ctx := context.Background()
	w, err := storage.AsSwapper(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := storage.PutIfAbsent(ctx, s, "lease/s", strings.NewReader("gen 1")); err != nil {
		t.Fatal(err)
	}
	data, v1, err := w.GetVersion(ctx, "lease/s")
	if err != nil || string(data) != "gen 1" || v1 == "" {
		t.Fatalf("GetVersion: %q %q %v", data, v1, err)
	}
	v2, err := w.PutIfVersion(ctx, "lease/s", []byte("gen 2"), v1)
	if err != nil || v2 == "" || v2 == v1 {
		t.Fatalf("PutIfVersion with the version read: %q %v", v2, err)
	}
	if _, err := w.PutIfVersion(ctx, "lease/s", []byte("stale"), v1); !errors.Is(err, storage.ErrChanged) {
		t.Fatalf("PutIfVersion with an old version: %v, want ErrChanged", err)
	}
	same(t, "after a refused swap", get(t, s, "lease/s", 0, -1), []byte("gen 2"))

	const writers = 6
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			_, err := w.PutIfVersion(ctx, "lease/s", fmt.Appendf(nil, "writer %d", i), v2)
			errs <- err
		}()
	}
	won := 0
	for range writers {
		switch err := <-errs; {
		case err == nil:
			won++
		case !errors.Is(err, storage.ErrChanged):
			t.Fatalf("racing PutIfVersion: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing swaps won, want exactly 1", won, writers)
	}
	if err := s.Delete(ctx, "lease/s"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.PutIfVersion(ctx, "lease/s", []byte("x"), v2); !errors.Is(err, storage.ErrChanged) {
		t.Fatalf("PutIfVersion of a deleted object: %v, want ErrChanged", err)
	}
	if _, _, err := w.GetVersion(ctx, "lease/none"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetVersion of a missing object: %v, want ErrNotFound", err)
	}
}
