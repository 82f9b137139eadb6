package postgres_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/drkit/drkit/internal/testenv"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
	"github.com/drkit/drkit/storage/storetest"
)

// TestServerCompressesTheArchive: with every region at one zstd level the
// server compresses the archive; the chunks, stored as they came, are one
// zstd stream of a tar as long as the manifest's plain size, holding the
// cluster's files.
func TestServerCompressesTheArchive(t *testing.T) {
	e := newEnv(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g")
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
		stream.Write(storetest.ReadObject(t, e.regions[1].Pipeline, c))
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

// TestEncryptedRegionRestores: a region that encrypts stores the server's
// compressed chunks encrypted (no plaintext zstd frame on disk); a restore
// from it alone, WAL fetched by PostgreSQL through drctl, has every row.
func TestEncryptedRegionRestores(t *testing.T) {
	e := newEnv(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	// The restored server runs drctl wal-fetch as its own OS user, which
	// must read the identity: in production the operator gives that user
	// the key; here the file is world-readable in a throwaway folder.
	key := filepath.Join(e.work, "age.key")
	if err := os.WriteFile(key, []byte(id.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.regions = nil
	e.writeConfig(t, fmt.Sprintf(`regions:
  - name: eu
    store: file://%[1]s/eu?mode=0644
  - name: us
    store: file://%[1]s/us?mode=0644
    encryption:
      recipients: [%[3]s]
      identity_file: %[4]s
clusters:
  - name: orders
    engine: postgres
    region: eu
    dsn: %[2]s
    flush_interval: 200ms
`, e.work, e.pg.DSN("postgres"), id.Recipient(), key))
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE t AS SELECT generate_series(1, 5000) AS id")
	e.backup(t)
	backups, _, err := pgsnap.ListBackups(context.Background(), e.regions[1].Pipeline, "orders")
	if err != nil || len(backups) != 1 {
		t.Fatalf("region us lists %d backups (%v), want 1", len(backups), err)
	}
	for i, c := range backups[0].Chunks {
		if c.Encryption != "age" || c.Compression != "none" {
			t.Fatalf("chunk %d in region us: encryption %q, compression %q; want age and none (compressed by the server)", i, c.Encryption, c.Compression)
		}
		raw, err := os.ReadFile(filepath.Join(e.work, "us", filepath.FromSlash(c.Key)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(raw, []byte("age-encryption.org/v1")) {
			t.Fatalf("chunk %d in region us is not age-encrypted: starts %q", i, raw[:min(len(raw), 16)])
		}
	}
	testenv.PGExec(t, conn, "INSERT INTO t SELECT generate_series(5001, 6000)")
	e.waitShipped(t, conn)
	_, port, out, err := e.restore(t, "--to-region", "us", "--start")
	if err != nil {
		t.Fatalf("drctl restore: %v\n%s", err, out)
	}
	var n int
	if err := connect(t, port).QueryRow(context.Background(), "SELECT count(*) FROM t").Scan(&n); err != nil || n != 6000 {
		t.Fatalf("the restore from the encrypted region has %d rows (%v), want 6000", n, err)
	}
}
