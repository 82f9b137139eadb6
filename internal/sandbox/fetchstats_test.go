package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFetchStatsSumConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats")
	if b, d, err := ReadFetchStats(path); err != nil || b != 0 || d != 0 {
		t.Fatalf("no file: %d %v %v, want 0 0 nil", b, d, err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := AppendFetchStats(path, int64(i), time.Duration(i)*time.Millisecond); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	b, d, err := ReadFetchStats(path)
	if err != nil || b != 49*50/2 || d != 49*50/2*time.Millisecond {
		t.Fatalf("read %d bytes %v (%v), want %d and %v", b, d, err, 49*50/2, 49*50/2*time.Millisecond)
	}
}

func TestFetchStatsRefusesAGarbledLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats")
	if err := os.WriteFile(path, []byte("10 20\nten 20\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadFetchStats(path); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err %v, want one naming line 2", err)
	}
}

func TestFetchStatsDoesNotFollowASymlink(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "stats")
	if err := os.Symlink(other, path); err != nil {
		t.Fatal(err)
	}
	if err := AppendFetchStats(path, 1, 1); err == nil {
		t.Fatal("appended through a symlink")
	}
}
