package postgres

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// copyBuf is the size of the one buffer file data is copied through.
const copyBuf = 1 << 20

// extractor unpacks a tar stream into a folder, owned by uid:gid. It writes
// synchronously: most of a restore's data is one large relation file whose
// writes the kernel serializes anyway, and handing pieces to writer goroutines
// measured slower (more futex and scheduler time than it saved).
type extractor struct {
	dir      string
	uid, gid int
	buf      []byte
}

func newExtractor(dir string, uid, gid int) *extractor {
	return &extractor{dir: dir, uid: uid, gid: gid, buf: make([]byte, copyBuf)}
}

// run unpacks r, reporting file bytes written to progress.
func (x *extractor) run(r io.Reader, total int64, progress func(done, total int64)) error {
	tr := tar.NewReader(r)
	var done int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read backup archive: %w", err)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("backup archive entry %q points outside the target folder", h.Name)
		}
		p := filepath.Join(x.dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := x.file(p, tr, h); err != nil {
				return err
			}
			done += h.Size
			if progress != nil {
				progress(done, total)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		default:
			continue
		}
		if err := x.own(p, h); err != nil {
			return err
		}
	}
}

func (x *extractor) own(p string, h *tar.Header) error {
	if err := os.Lchown(p, x.uid, x.gid); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	if h.Typeflag == tar.TypeSymlink {
		return nil
	}
	return os.Chmod(p, os.FileMode(h.Mode).Perm())
}

func (x *extractor) file(p string, r io.Reader, h *tar.Header) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("restore %s: %w", h.Name, err)
	}
	// Plain Writer and Reader so io.CopyBuffer uses our buffer, not ReadFrom.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{r}, x.buf); err != nil {
		f.Close()
		return fmt.Errorf("restore %s: %w", h.Name, err)
	}
	return f.Close()
}
