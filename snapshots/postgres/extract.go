package postgres

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The base backup archive is PostgreSQL's own ustar stream (BASE_BACKUP writes
// plain ustar headers: no pax or GNU extensions). It is parsed here rather than
// with archive/tar so that file data goes from the downloaded chunk buffers
// straight to write(2): a restore is mostly copying bytes, and archive/tar would
// copy each byte twice more in user space.

const blockSize = 512

// tarSource is what the extractor reads: headers through Read, file data
// written directly to a file.
type tarSource interface {
	io.Reader
	// CopyTo writes the next n bytes to w and consumes them.
	CopyTo(w io.Writer, n int64) error
}

// extractor unpacks a base backup archive into a folder, owned by uid:gid.
type extractor struct {
	dir      string
	uid, gid int
}

func newExtractor(dir string, uid, gid int) *extractor {
	return &extractor{dir: dir, uid: uid, gid: gid}
}

// header is the part of a ustar header a restore needs.
type header struct {
	name     string
	mode     int64
	size     int64
	typeflag byte
	linkname string
}

// run unpacks src, reporting file bytes written to progress.
func (x *extractor) run(src tarSource, total int64, progress func(done, total int64)) error {
	var blk [blockSize]byte
	var done int64
	for {
		if _, err := io.ReadFull(src, blk[:]); err != nil {
			return fmt.Errorf("read backup archive: %w", err)
		}
		if blk == [blockSize]byte{} {
			return nil // end of archive
		}
		h, err := parseHeader(&blk)
		if err != nil {
			return err
		}
		if err := x.entry(src, h); err != nil {
			return err
		}
		if pad := (blockSize - h.size%blockSize) % blockSize; h.typeflag == '0' && pad > 0 {
			if _, err := io.ReadFull(src, blk[:pad]); err != nil {
				return fmt.Errorf("read backup archive: %w", err)
			}
		}
		if h.typeflag == '0' {
			done += h.size
			if progress != nil {
				progress(done, total)
			}
		}
	}
}

func parseHeader(b *[blockSize]byte) (header, error) {
	var sum int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' ' // the checksum field counts as spaces
		}
		sum += int64(c)
	}
	want, err := octal(b[148:156])
	if err != nil || want != sum {
		return header{}, errors.New("backup archive: a header's checksum does not match: the archive is corrupt")
	}
	if !bytes.HasPrefix(b[257:263], []byte("ustar")) {
		return header{}, errors.New("backup archive: not a ustar header")
	}
	h := header{typeflag: b[156], name: cstr(b[0:100]), linkname: cstr(b[157:257])}
	if prefix := cstr(b[345:500]); prefix != "" {
		h.name = prefix + "/" + h.name
	}
	if h.typeflag == 0 {
		h.typeflag = '0'
	}
	if h.mode, err = octal(b[100:108]); err != nil {
		return header{}, fmt.Errorf("backup archive: %s: bad mode", h.name)
	}
	if h.size, err = octal(b[124:136]); err != nil {
		return header{}, fmt.Errorf("backup archive: %s: bad size", h.name)
	}
	return h, nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func octal(b []byte) (int64, error) {
	s := strings.TrimSpace(cstr(b))
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 8, 64)
}

// entry creates one archive entry.
func (x *extractor) entry(src tarSource, h header) error {
	name := filepath.Clean(h.name)
	if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("backup archive entry %q points outside the target folder", h.name)
	}
	p := filepath.Join(x.dir, name)
	switch h.typeflag {
	case '5':
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
	case '0':
		if err := x.file(p, src, h); err != nil {
			return err
		}
	case '2':
		if err := os.Symlink(h.linkname, p); err != nil {
			return err
		}
	default:
		return fmt.Errorf("backup archive entry %q has type %q, which a PostgreSQL base backup does not use", h.name, h.typeflag)
	}
	if err := os.Lchown(p, x.uid, x.gid); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	if h.typeflag == '2' {
		return nil
	}
	return os.Chmod(p, os.FileMode(h.mode).Perm())
}

func (x *extractor) file(p string, src tarSource, h header) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("restore %s: %w", h.name, err)
	}
	if err := src.CopyTo(f, h.size); err != nil {
		f.Close()
		return fmt.Errorf("restore %s: %w", h.name, err)
	}
	return f.Close()
}
