package drill

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// A sandbox whose drill runs is left alone; one whose drill is gone is
// removed; folders that are not sandboxes (another name, no owner file) are
// never touched.
func TestCleanStaleKeepsRunningDrills(t *testing.T) {
	root := t.TempDir()
	live, err := newSandboxDir(root, "c", "r")
	if err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(root, "c-r-1700000000000000000")
	if err := os.Mkdir(dead, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, ownerFile), []byte("999999999 1 x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Not sandboxes: never removed, whatever they hold.
	other := filepath.Join(root, "data")
	noOwner := filepath.Join(root, "c-r-1700000000000000001")
	for _, d := range []string{other, noOwner} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(other, ownerFile), []byte("999999999 1 x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := CleanStale(root, slog.New(slog.DiscardHandler)); n != 1 {
		t.Fatalf("CleanStale removed %d, want 1", n)
	}
	for _, d := range []string{other, noOwner} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s, not a sandbox of a gone drill, was removed: %v", d, err)
		}
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the running drill's sandbox: %v", err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the stale sandbox: %v, want removed", err)
	}
}
