package file_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
	"github.com/drkit/drkit/storage/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store {
		s, err := storage.Open(context.Background(), "file://"+t.TempDir(), storetest.Options)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// A put leaves no temporary file behind, and an object never escapes the root.
func TestNoTempFilesAndNoEscape(t *testing.T) {
	root := t.TempDir()
	s, err := file.Open(filepath.Join(root, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), "a/b", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "store", "a"))
	if len(entries) != 1 || entries[0].Name() != "b" {
		t.Fatalf("folder holds %v, want only b", entries)
	}
	_ = s.Put(context.Background(), "../outside", strings.NewReader("x"))
	if _, err := os.Stat(filepath.Join(root, "outside")); err == nil {
		t.Fatal("a key escaped the store's root")
	}
}

func TestOpenRejectsRelativeURL(t *testing.T) {
	if _, err := storage.Open(context.Background(), "file://relative/path", storage.Options{}); err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Fatalf("Open relative = %v", err)
	}
}
