package postgres_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	pgsnap "github.com/drkit/drkit/snapshots/postgres"
	"github.com/drkit/drkit/storage"
)

// TestServerCompressesTheArchive: with every region at one zstd level the
// server compresses the archive; the chunks, stored as they came, are one
// zstd stream of a tar as long as the manifest's plain size, holding the
// cluster's files.
func TestServerCompressesTheArchive(t *testing.T) {
	e := newEnv(t)
	conn := connect(t, e.pg.Port)
	exec1(t, conn, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g")
	m := e.backup(t)
	if m.FormatVersion != 2 || m.ArchiveCompression != "zstd" {
		t.Fatalf("manifest format %d, archive compression %q; want 2 and zstd", m.FormatVersion, m.ArchiveCompression)
	}
	if len(m.Chunks) < 2 {
		t.Fatalf("%d chunks of 1 MiB; want several, to read the stream across chunks", len(m.Chunks))
	}
	var stream bytes.Buffer
	for i, c := range m.Chunks {
		if c.Compression != "none" {
			t.Fatalf("chunk %d stored with compression %q: compressed twice", i, c.Compression)
		}
		stream.Write(readObject(t, e.regions[1].Pipeline, c))
	}
	dec, err := zstd.NewReader(&stream)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	archive, err := io.ReadAll(dec)
	if err != nil {
		t.Fatalf("decompress the chunks: %v", err)
	}
	if int64(len(archive)) != m.PlainSize {
		t.Fatalf("the archive is %d bytes; the manifest says %d", len(archive), m.PlainSize)
	}
	files := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the archive is not a tar: %v", err)
		}
		files[h.Name] = true
	}
	for _, f := range []string{"backup_label", "PG_VERSION", "global/pg_control"} {
		if !files[f] {
			t.Fatalf("the archive lacks %s (%d entries)", f, len(files))
		}
	}
}

// TestRegionsAtDifferentLevels: regions that compress differently each get
// the archive compressed by drkit at their own level, in a format-1 manifest;
// the restore passes pg_verifybackup.
func TestRegionsAtDifferentLevels(t *testing.T) {
	e := newEnv(t)
	e.regions[1].Pipeline.Level = 3
	m := e.backup(t)
	if m.FormatVersion != 1 || m.ArchiveCompression != "" {
		t.Fatalf("manifest format %d, archive compression %q; want 1 and none", m.FormatVersion, m.ArchiveCompression)
	}
	for i, c := range m.Chunks {
		if c.Compression != "zstd" {
			t.Fatalf("chunk %d stored with compression %q, want zstd", i, c.Compression)
		}
	}
	dataDir, _, out, err := e.restore(t, "--to-region", "us")
	if err != nil {
		t.Fatalf("drctl restore: %v\n%s", err, out)
	}
	verifyBackup(t, dataDir)
}

func readObject(t *testing.T, p *storage.Pipeline, obj storage.Object) []byte {
	t.Helper()
	rc, err := p.Open(context.Background(), obj)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", obj.Key, err)
	}
	return b
}

// TestServerThatCannotCompress: when the server refuses the compression (here
// a level above zstd's 22, refused as a server built without zstd refuses
// any), the backup is asked again on the same connection and drkit
// compresses it; a warning says so.
func TestServerThatCannotCompress(t *testing.T) {
	e := newEnv(t)
	for _, r := range e.regions {
		r.Pipeline.Level = 23
	}
	var log bytes.Buffer
	m, err := pgsnap.Backup(context.Background(), pgsnap.BackupOptions{Cluster: "orders", DSN: e.pg.DSN("postgres"), Regions: e.regions,
		Log: slog.New(slog.NewTextHandler(&log, nil)), ChunkSize: 1 << 20})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if m.FormatVersion != 1 || m.ArchiveCompression != "" || m.Chunks[0].Compression != "zstd" {
		t.Fatalf("manifest format %d, archive compression %q, chunk compression %q; want 1, none, zstd", m.FormatVersion, m.ArchiveCompression, m.Chunks[0].Compression)
	}
	if !strings.Contains(log.String(), "the server cannot compress the backup") || !strings.Contains(log.String(), "compression level") {
		t.Fatalf("no warning naming the server's refusal:\n%s", log.String())
	}
	if _, _, out, err := e.restore(t, "--to-region", "eu"); err != nil {
		t.Fatalf("drctl restore: %v\n%s", err, out)
	}
}
