package drill

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// A sandbox whose drill runs is left alone; one whose drill is gone is
// removed.
func TestCleanStaleKeepsRunningDrills(t *testing.T) {
	root := t.TempDir()
	live, err := newSandboxDir(root, "c", "r")
	if err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(root, "c-r-1")
	if err := os.Mkdir(dead, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, ownerFile), []byte("999999999"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := CleanStale(root, slog.New(slog.DiscardHandler))
	if err != nil || n != 1 {
		t.Fatalf("CleanStale: %d, %v; want 1 removed", n, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the running drill's sandbox: %v", err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the stale sandbox: %v, want removed", err)
	}
}
