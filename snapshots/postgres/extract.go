package postgres

import (
	"bytes"
	"cmp"
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
//
// The archive comes from a store, which is untrusted input: it must never make
// a restore (running as root) write outside the folder. Names are cleaned and
// kept below dir, and every symlink the archive creates is remembered: an entry
// whose path goes through one is refused, so a link cannot redirect a later
// write. The folder starts empty, so the links created here are all there are.
type extractor struct {
	dir      string
	uid, gid int
	links    map[string]bool // cleaned names of the symlinks created so far
}

func newExtractor(dir string, uid, gid int) *extractor {
	return &extractor{dir: dir, uid: uid, gid: gid, links: map[string]bool{}}
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
	if !filepath.IsLocal(name) {
		return fmt.Errorf("backup archive entry %q points outside the target folder", h.name)
	}
	if link := x.throughLink(name); link != "" {
		return fmt.Errorf("backup archive entry %q goes through the symlink %q: refused, it could write outside the target folder", h.name, link)
	}
	if h.typeflag == '2' {
		if err := x.checkLink(name, h.linkname); err != nil {
			return err
		}
		x.links[name] = true
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

// throughLink returns the symlink created earlier that name is, or lies
// below, or "" when there is none.
func (x *extractor) throughLink(name string) string {
	for p := name; p != "." && p != string(filepath.Separator); p = filepath.Dir(p) {
		if x.links[p] {
			return p
		}
	}
	return ""
}

// checkLink allows a symlink whose target stays inside the folder, and
// PostgreSQL's own tablespace links pg_tblspc/<oid>, which point at a
// tablespace's location by design: they are created, but nothing is ever
// written through them (throughLink). Any other link must not lead through
// a link, whether already made or made later: its target may not pass
// through another link or lie under pg_tblspc/, whose entries lead out.
func (x *extractor) checkLink(name, target string) error {
	if isTablespaceLink(name) {
		return nil
	}
	resolved := target
	if !filepath.IsAbs(target) {
		resolved = filepath.Join(filepath.Dir(name), target)
	}
	if filepath.IsAbs(resolved) || !filepath.IsLocal(resolved) {
		return fmt.Errorf("backup archive entry %q is a symlink to %q, outside the target folder: refused", name, target)
	}
	if link := x.throughLink(resolved); link != "" || resolved == "pg_tblspc" || strings.HasPrefix(resolved, "pg_tblspc"+string(filepath.Separator)) {
		return fmt.Errorf("backup archive entry %q is a symlink to %q, through another link (%s) that may lead outside the target folder: refused", name, target, cmp.Or(link, "pg_tblspc"))
	}
	return nil
}

// isTablespaceLink reports whether name is pg_tblspc/<oid>.
func isTablespaceLink(name string) bool {
	dir, oid := filepath.Split(name)
	return dir == "pg_tblspc/" && oid != "" && strings.Trim(oid, "0123456789") == ""
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
