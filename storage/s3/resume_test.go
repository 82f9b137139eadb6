package s3_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/storetest"
)

const (
	resumeParts = 8
	resumeSize  = resumeParts * storage.MinPartSize
)

// slowReader hands out its data with a pause before each part, so that the parent
// can kill the uploader part-way.
type slowReader struct {
	r    *bytes.Reader
	next int64
}

func (s *slowReader) Read(p []byte) (int, error) {
	off := int64(resumeSize) - int64(s.r.Len())
	if off >= s.next {
		time.Sleep(300 * time.Millisecond)
		s.next += storage.MinPartSize
	}
	p = p[:min(int64(len(p)), s.next-off)]
	return s.r.Read(p)
}

func resumeOptions(stateDir string, onPart func(storage.PartEvent)) storage.Options {
	return storage.Options{PartSize: storage.MinPartSize, Threshold: storage.MinPartSize, Concurrency: 2, StateDir: stateDir, OnPart: onPart}
}

// TestChildUploader is the uploading process of TestResumeAfterSIGKILL; it runs
// only as that test's child and is killed before it finishes.
func TestChildUploader(t *testing.T) {
	url := os.Getenv("RESUME_CHILD_URL")
	if url == "" {
		t.Skip("runs only as the child of TestResumeAfterSIGKILL")
	}
	s, err := storage.Open(context.Background(), url, resumeOptions(os.Getenv("RESUME_CHILD_STATE"), nil))
	if err != nil {
		t.Fatal(err)
	}
	data := storetest.Data(99, resumeSize)
	err = s.Put(context.Background(), "big/object", storage.SizedReader{Reader: &slowReader{r: bytes.NewReader(data)}, N: resumeSize})
	t.Fatalf("the child finished its upload (%v); it should have been killed first", err)
}

// recordedParts counts the part lines in the one upload state file under dir.
func recordedParts(dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "uploads", "*.jsonl"))
	if len(files) != 1 {
		return 0
	}
	b, _ := os.ReadFile(files[0])
	return strings.Count(string(b), "\n") - 1
}

func TestResumeAfterSIGKILL(t *testing.T) {
	minio := testenv.StartMinIO(t)
	url := minio.StoreURL("resume")
	stateDir := t.TempDir()

	child := exec.Command(os.Args[0], "-test.run=^TestChildUploader$", "-test.count=1")
	child.Env = append(os.Environ(), "RESUME_CHILD_URL="+url, "RESUME_CHILD_STATE="+stateDir)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for recordedParts(stateDir) < 3 {
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("the child recorded fewer than 3 parts in 60s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	recorded := recordedParts(stateDir)
	if recorded >= resumeParts {
		t.Fatalf("the child recorded all %d parts before the kill; nothing left to resume", recorded)
	}

	var resumed, sent atomic.Int32
	s, err := storage.Open(context.Background(), url, resumeOptions(stateDir, func(e storage.PartEvent) {
		if e.Resumed {
			resumed.Add(1)
		} else {
			sent.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	data := storetest.Data(99, resumeSize)
	if err := s.Put(context.Background(), "big/object", bytes.NewReader(data)); err != nil {
		t.Fatalf("resumed Put: %v", err)
	}
	t.Logf("child recorded %d parts before SIGKILL; resume skipped %d and sent %d", recorded, resumed.Load(), sent.Load())
	if int(resumed.Load()) != recorded || int(resumed.Load()+sent.Load()) != resumeParts {
		t.Fatalf("resume skipped %d and sent %d parts; want %d skipped (recorded) and %d in all", resumed.Load(), sent.Load(), recorded, resumeParts)
	}
	rc, err := s.Get(context.Background(), "big/object", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(rc); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("resumed object differs from the source (%d bytes, %v)", got.Len(), err)
	}
	if n := recordedParts(stateDir); n != 0 {
		t.Errorf("upload state still present after completion (%d parts)", n)
	}
}

// A source that changed since the crash must not be stitched onto old parts.
func TestResumeWithChangedSourceSendsChangedParts(t *testing.T) {
	minio := testenv.StartMinIO(t)
	stateDir := t.TempDir()
	url := minio.StoreURL("changed")
	ctx, cancel := context.WithCancel(context.Background())
	first := storetest.Data(1, resumeSize)
	var parts atomic.Int32
	s, err := storage.Open(ctx, url, resumeOptions(stateDir, func(storage.PartEvent) {
		if parts.Add(1) == 3 {
			cancel() // like drd stopping: the upload is kept for resuming
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "obj", bytes.NewReader(first)); err == nil {
		t.Fatal("cancelled Put succeeded")
	}
	changed := bytes.Clone(first)
	changed[1] ^= 0xff // part 1 differs now
	var resumed atomic.Int32
	s2, err := storage.Open(context.Background(), url, resumeOptions(stateDir, func(e storage.PartEvent) {
		if e.Resumed {
			resumed.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Put(context.Background(), "obj", bytes.NewReader(changed)); err != nil {
		t.Fatal(err)
	}
	rc, err := s2.Get(context.Background(), "obj", 0, 16)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 16)
	_, _ = rc.Read(head)
	rc.Close()
	if !bytes.Equal(head, changed[:16]) {
		t.Fatal("the resumed object kept a part of the old source")
	}
	if resumed.Load() == 0 {
		t.Error("no unchanged part was reused: the upload was not resumed at all")
	}
}

func TestSweepAbortsOldUploads(t *testing.T) {
	minio := testenv.StartMinIO(t)
	stateDir := t.TempDir()
	url := minio.StoreURL("sweep")
	ctx, cancel := context.WithCancel(context.Background())
	s, err := storage.Open(ctx, url, resumeOptions(stateDir, func(storage.PartEvent) { cancel() }))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "abandoned", bytes.NewReader(storetest.Data(3, resumeSize))); err == nil {
		t.Fatal("cancelled Put succeeded")
	}
	// An abandoned upload under another prefix of the bucket is not this store's.
	octx, ocancel := context.WithCancel(context.Background())
	other, err := storage.Open(octx, minio.StoreURL("sweep-other"), resumeOptions(t.TempDir(), func(storage.PartEvent) { ocancel() }))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Put(octx, "abandoned", bytes.NewReader(storetest.Data(4, resumeSize))); err == nil {
		t.Fatal("cancelled Put succeeded")
	}
	// A bucket shared with another application: with no prefix, the store
	// sees that application's uploads too, and must never abort them.
	fctx, fcancel := context.WithCancel(context.Background())
	whole, err := storage.Open(fctx, minio.StoreURL(""), resumeOptions(t.TempDir(), func(storage.PartEvent) { fcancel() }))
	if err != nil {
		t.Fatal(err)
	}
	if err := whole.Put(fctx, "other-app/video.mp4", bytes.NewReader(storetest.Data(5, resumeSize))); err == nil {
		t.Fatal("cancelled Put succeeded")
	}
	owns := storage.OwnedPrefixes("abandoned", "orders/")
	if got, err := whole.(storage.Sweeper).Sweep(context.Background(), time.Now().Add(time.Minute), false, storage.OwnedPrefixes("orders/", "_drkit/")); err != nil || len(got) != 0 {
		t.Fatalf("Sweep of a whole shared bucket = %v, %v; want nothing of other-app's", got, err)
	}
	sw := s.(storage.Sweeper)
	if got, err := sw.Sweep(context.Background(), time.Now().Add(-time.Hour), false, owns); err != nil || len(got) != 0 {
		t.Fatalf("Sweep of uploads older than an hour = %v, %v; want none", got, err)
	}
	cutoff := time.Now().Add(time.Minute)
	if got, err := sw.Sweep(context.Background(), cutoff, true, owns); err != nil || len(got) != 1 || got[0].Key != "abandoned" {
		t.Fatalf("dry-run Sweep = %v, %v; want the abandoned upload", got, err)
	}
	if got, err := sw.Sweep(context.Background(), cutoff, false, owns); err != nil || len(got) != 1 {
		t.Fatalf("Sweep = %v, %v", got, err)
	}
	if got, err := sw.Sweep(context.Background(), cutoff, true, owns); err != nil || len(got) != 0 {
		t.Fatalf("after Sweep, pending uploads = %v, %v; want none", got, err)
	}
	if got, err := other.(storage.Sweeper).Sweep(context.Background(), cutoff, true, owns); err != nil || len(got) != 1 {
		t.Fatalf("the other prefix's upload = %v, %v; want it untouched", got, err)
	}
}
