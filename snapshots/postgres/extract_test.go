package postgres

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// memSource serves a byte slice as a tarSource.
type memSource struct{ r *bytes.Reader }

func (m memSource) Read(p []byte) (int, error) { return m.r.Read(p) }
func (m memSource) CopyTo(w io.Writer, n int64) error {
	_, err := io.CopyN(w, m.r, n)
	return err
}

func archive(t *testing.T, entries func(tw *tar.Writer)) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	entries(tw)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The ustar parser unpacks what a tar writer produces: folders, files of sizes
// around the block size, symlinks, modes.
func TestExtractUstar(t *testing.T) {
	data := archive(t, func(tw *tar.Writer) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "base/", Mode: 0o700, Format: tar.FormatUSTAR})
		for i, size := range []int{0, 1, 511, 512, 513, 70000} {
			body := strings.Repeat(string(rune('a'+i)), size)
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "base/f" + string(rune('0'+i)), Mode: 0o600, Size: int64(size), Format: tar.FormatUSTAR})
			tw.Write([]byte(body))
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "base/f1", Format: tar.FormatUSTAR})
	})
	dir := t.TempDir()
	if err := newExtractor(dir, os.Getuid(), os.Getgid()).run(memSource{bytes.NewReader(data)}, 0, nil); err != nil {
		t.Fatal(err)
	}
	for i, size := range []int{0, 1, 511, 512, 513, 70000} {
		b, err := os.ReadFile(filepath.Join(dir, "base", "f"+string(rune('0'+i))))
		if err != nil || string(b) != strings.Repeat(string(rune('a'+i)), size) {
			t.Fatalf("file %d: %d bytes (%v), want %d", i, len(b), err, size)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != "base/f1" {
		t.Fatalf("symlink = %q, %v", target, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "base", "f0")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v", fi.Mode())
	}
}

func TestExtractRejectsBadArchives(t *testing.T) {
	good := archive(t, func(tw *tar.Writer) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "f", Size: 3, Mode: 0o600, Format: tar.FormatUSTAR})
		tw.Write([]byte("abc"))
	})
	corrupt := bytes.Clone(good)
	corrupt[10] ^= 1 // inside the name: the header checksum no longer matches
	escape := archive(t, func(tw *tar.Writer) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "../evil", Size: 1, Mode: 0o600, Format: tar.FormatUSTAR})
		tw.Write([]byte("x"))
	})
	truncated := good[:blockSize+1]
	for name, data := range map[string][]byte{"corrupt header": corrupt, "escaping name": escape, "truncated": truncated} {
		if err := newExtractor(t.TempDir(), os.Getuid(), os.Getgid()).run(memSource{bytes.NewReader(data)}, 0, nil); err == nil {
			t.Errorf("%s: extracted without error", name)
		}
	}
}

// TestZstdSource: a compressed archive read through zstdSource extracts as
// the plain one does, over several decode buffers; a damaged stream is an
// error naming the decompression, and Close returns mid-stream.
func TestZstdSource(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*maxWrite/16+7) // over three decode buffers
	plain := archive(t, func(tw *tar.Writer) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: int64(len(big)), Mode: 0o600, Format: tar.FormatUSTAR})
		tw.Write(big)
	})
	enc, _ := zstd.NewWriter(nil)
	packed := enc.EncodeAll(plain, nil)

	zs, err := newZstdSource(bytes.NewReader(packed))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := newExtractor(dir, os.Getuid(), os.Getgid()).run(zs, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "big")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("extracted %d bytes (%v), want %d", len(got), err, len(big))
	}
	if n, err := io.Copy(io.Discard, zs); err != nil || n != blockSize { // the second block of the end marker
		t.Fatalf("after the archive: %d bytes, %v; want one block, then the end of the stream", n, err)
	}
	zs.Close()

	damaged := bytes.Clone(packed)
	for i := len(damaged) / 3; i < len(damaged)/3+64; i++ {
		damaged[i] ^= 0x5a
	}
	zs, err = newZstdSource(bytes.NewReader(damaged))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, zs)
	if err == nil || !strings.Contains(err.Error(), "decompress archive") {
		t.Fatalf("a damaged stream read with error %v; want one naming the decompression", err)
	}
	zs.Close()

	zs, _ = newZstdSource(bytes.NewReader(packed))
	if _, err := io.ReadFull(zs, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	zs.Close() // the decoder is stopped while buffers are still waiting
}

// A store is untrusted: an archive must not make a restore write outside its
// folder through a symlink it planted, whether the link leaves the folder or
// a later entry goes through a link. PostgreSQL's pg_tblspc links are created
// as they are; a link inside the folder is kept.
func TestExtractRefusesSymlinkEscapes(t *testing.T) {
	outside := t.TempDir()
	cases := map[string]func(tw *tar.Writer){
		"link leaving the folder, then a file through it": func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "evil", Linkname: outside, Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "evil/pwned", Size: 1, Mode: 0o600, Format: tar.FormatUSTAR})
			tw.Write([]byte("x"))
		},
		"relative link climbing out": func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "base/", Mode: 0o700, Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "base/up", Linkname: "../../..", Format: tar.FormatUSTAR})
		},
		"file through a link inside the folder": func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "base/", Mode: 0o700, Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "alias", Linkname: "base", Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "alias/f", Size: 1, Mode: 0o600, Format: tar.FormatUSTAR})
			tw.Write([]byte("x"))
		},
		"link into a tablespace made after it": func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "pg_tblspc/", Mode: 0o700, Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "pg_tblspc/16400", Linkname: outside, Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "x", Linkname: "pg_tblspc/16400/f", Format: tar.FormatUSTAR})
		},
		"link into a tablespace made before it": func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "x", Linkname: "pg_tblspc/16400/f", Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "pg_tblspc/", Mode: 0o700, Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "pg_tblspc/16400", Linkname: outside, Format: tar.FormatUSTAR})
		},
		"link through another link": func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "base/", Mode: 0o700, Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "alias", Linkname: "base", Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "y", Linkname: "alias/f", Format: tar.FormatUSTAR})
		},
		"folder through a tablespace link": func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "pg_tblspc/", Mode: 0o700, Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "pg_tblspc/16400", Linkname: outside, Format: tar.FormatUSTAR})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "pg_tblspc/16400/PG_15", Mode: 0o700, Format: tar.FormatUSTAR})
		},
	}
	for name, entries := range cases {
		err := newExtractor(t.TempDir(), os.Getuid(), os.Getgid()).run(memSource{bytes.NewReader(archive(t, entries))}, 0, nil)
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s: extracted with error %v; want a refusal", name, err)
		}
	}
	if left, _ := os.ReadDir(outside); len(left) > 0 {
		t.Fatalf("the archive wrote outside the target folder: %v", left)
	}

	ok := archive(t, func(tw *tar.Writer) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "pg_tblspc/", Mode: 0o700, Format: tar.FormatUSTAR})
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "pg_tblspc/16400", Linkname: outside, Format: tar.FormatUSTAR})
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "base/", Mode: 0o700, Format: tar.FormatUSTAR})
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "inside", Linkname: "base", Format: tar.FormatUSTAR})
	})
	dir := t.TempDir()
	if err := newExtractor(dir, os.Getuid(), os.Getgid()).run(memSource{bytes.NewReader(ok)}, 0, nil); err != nil {
		t.Fatalf("a tablespace link and a link inside the folder: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "pg_tblspc", "16400")); err != nil || target != outside {
		t.Fatalf("tablespace link = %q, %v", target, err)
	}
}
