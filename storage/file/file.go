// Package file is the file:// storage adapter: a region that is a folder, local or
// on a mounted filesystem. It is drkit's embedded default, needing nothing but a
// folder, and the adapter `make demo` runs on.
//
// Atomicity: Put writes to a temporary name in the target folder, fsyncs it,
// renames it into place and fsyncs the folder, so a reader or a crash sees the old
// object or the whole new one (a context marked storage.WithoutFsync skips the
// fsyncs: zero-RPO remote_write chunks). Transient errors are not retried: a local
// filesystem has none worth retrying.
//
// Objects are created 0600 and folders 0700: a region holds every row of the
// database. ?mode=0640 (in the URL) lets a group read it too, folders getting
// 0750: PostgreSQL's restore_command (drctl wal-fetch) runs as the postgres
// user, and when drd runs as another user the region's root folder should
// belong to a group postgres is in, with the setgid bit (chmod 2750), so new
// files inherit it. A folder this store creates is fsynced into its parent.
//
// A key and a longer key below it ("a" and "a/b") cannot both exist here, as a
// name cannot be a file and a folder at once; drkit's key layout never needs it.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/drkit/drkit/storage"
)

func init() {
	storage.RegisterCheck("file", checkURL)
	storage.Register("file", func(_ context.Context, u *url.URL, _ storage.Options) (storage.Store, error) {
		mode := DefaultMode
		if m := u.Query().Get("mode"); m != "" {
			v, err := strconv.ParseUint(m, 8, 32)
			if err != nil || v&0o600 != 0o600 || v&^0o666 != 0 {
				return nil, fmt.Errorf("file store URL %q: mode %q must be octal file permissions the owner can read and write, at most 0666 (0600, 0640, 0644)", u.String(), m)
			}
			mode = fs.FileMode(v)
		}
		return OpenMode(u.Path, mode)
	})
}

// checkURL wants an absolute path and no host: file://var/x would be a host "var".
func checkURL(u *url.URL) error {
	if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
		return errors.New("a file store needs an absolute path with three slashes, as in file:///var/lib/drkit/r1")
	}
	return nil
}

// tmpPrefix marks files being written; List and Stat never show them.
const tmpPrefix = ".drkit-tmp-"

// DefaultMode is the permission of objects: the owner's alone.
const DefaultMode fs.FileMode = 0o600

// Store keeps objects as files below a root folder.
type Store struct {
	root string
	mode fs.FileMode // objects'; folders add x where r is set
}

var (
	_ storage.Store            = (*Store)(nil)
	_ storage.ExclusiveCreator = (*Store)(nil)
)

// Open returns a store rooted at root with DefaultMode, creating the folder
// if needed.
func Open(root string) (*Store, error) { return OpenMode(root, DefaultMode) }

// OpenMode returns a store whose objects get mode (folders the same plus x
// where r is set), creating the root folder if needed.
func OpenMode(root string, mode fs.FileMode) (*Store, error) {
	s := &Store{root: filepath.Clean(root), mode: mode}
	if err := s.mkdirAll(s.root); err != nil {
		return nil, fmt.Errorf("create file store folder: %w", err)
	}
	return s, nil
}

// dirMode is the folders' permission: the objects' with x where r is set.
func (s *Store) dirMode() fs.FileMode { return s.mode | (s.mode&0o444)>>2 }

// mkdirAll creates dir and its missing parents with dirMode, and fsyncs the
// parent of each one it creates: a new folder's entry is data too, and a
// crash must not lose the folder of an object whose Put returned.
func (s *Store) mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a folder", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := s.mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, s.dirMode()); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // made meanwhile by another writer
		}
		return err
	}
	if err := os.Chmod(dir, s.dirMode()); err != nil { // the umask narrowed it
		return err
	}
	return syncDir(parent)
}

// String implements storage.Store.
func (s *Store) String() string { return "file://" + s.root }

func (s *Store) path(key string) (string, error) {
	if err := storage.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put implements storage.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	return s.put(ctx, key, r, os.Rename)
}

// PutIfAbsent implements storage.ExclusiveCreator: link(2) fails when the
// name exists, so of two writers exactly one wins.
func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader) error {
	return s.put(ctx, key, r, func(tmp, p string) error {
		err := os.Link(tmp, p)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", key, storage.ErrExists)
		}
		if err == nil {
			err = os.Remove(tmp)
		}
		return err
	})
}

// put writes r to a temporary file beside key's path, syncs it and publishes
// it with place (rename, or link for an exclusive create).
func (s *Store) put(ctx context.Context, key string, r io.Reader, place func(tmp, p string) error) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := s.mkdirAll(dir); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(s.mode); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if _, err := io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	fsync := storage.FsyncWanted(ctx)
	if fsync {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("put %s: fsync: %w", key, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := place(tmp.Name(), p); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return err
		}
		return fmt.Errorf("put %s: %w", key, err)
	}
	done = true
	if !fsync {
		return nil
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("put %s: fsync folder: %w", key, err)
	}
	return nil
}

// Get implements storage.Store.
func (s *Store) Get(_ context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, notFound(key, err)
	}
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		f.Close()
		return nil, notFound(key, errOr(err, fs.ErrNotExist))
	}
	if offset > fi.Size() || offset < 0 {
		f.Close()
		return nil, fmt.Errorf("get %s: offset %d is outside the object's %d bytes", key, offset, fi.Size())
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if length < 0 {
		return f, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, length), f}, nil
}

// Stat implements storage.Store.
func (s *Store) Stat(_ context.Context, key string) (storage.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return storage.ObjectInfo{}, notFound(key, errOr(err, fs.ErrNotExist))
	}
	return storage.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements storage.Store. It walks only the folder the prefix points into,
// and orders each folder's entries as their keys sort ("a/" after "a-b"), so the
// keys come out in lexical order without collecting them first.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[storage.ObjectInfo, error] {
	return func(yield func(storage.ObjectInfo, error) bool) {
		dirKey := ""
		if i := strings.LastIndex(prefix, "/"); i >= 0 {
			dirKey = prefix[:i]
		}
		if strings.Contains(prefix, "..") || strings.HasPrefix(prefix, "/") {
			yield(storage.ObjectInfo{}, fmt.Errorf("list %q: %w", prefix, storage.ErrInvalidKey))
			return
		}
		s.walk(ctx, dirKey, prefix, yield)
	}
}

// readDirMatching reads folder dir (key dirKey) unsorted and keeps the
// entries whose keys could match prefix: wal-fetch lists one segment's prefix
// in a folder of thousands, and sorting (and allocating) every name per
// lookup made a long restore quadratic.
func readDirMatching(dir, dirKey, prefix string) ([]fs.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	base := dirKey + "/"
	if dirKey == "" {
		base = ""
	}
	rest, inside := strings.CutPrefix(prefix, base) // the prefix below this folder
	switch {
	case !inside:
		rest = "" // the folder lies wholly inside the prefix: every entry matches
	case strings.Contains(rest, "/"):
		rest = rest[:strings.IndexByte(rest, '/')+1] // deeper: only the folder on its path
		rest = strings.TrimSuffix(rest, "/")
	}
	var kept []fs.DirEntry
	for _, name := range names {
		if !strings.HasPrefix(name, rest) {
			continue
		}
		fi, err := os.Lstat(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted while listing
		}
		if err != nil {
			return nil, err
		}
		kept = append(kept, fs.FileInfoToDirEntry(fi))
	}
	return kept, nil
}

// walk yields the objects below folder key dirKey that match prefix; it returns
// false once the caller has stopped or an error was yielded.
func (s *Store) walk(ctx context.Context, dirKey, prefix string, yield func(storage.ObjectInfo, error) bool) bool {
	if err := ctx.Err(); err != nil {
		return yield(storage.ObjectInfo{}, err)
	}
	entries, err := readDirMatching(filepath.Join(s.root, filepath.FromSlash(dirKey)), dirKey, prefix)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return yield(storage.ObjectInfo{}, fmt.Errorf("list %q: %w", prefix, err))
	}
	sortKey := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(sortKey(a), sortKey(b)) })
	for _, e := range entries {
		key := path.Join(dirKey, e.Name())
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		if e.IsDir() {
			// Descend only where keys below could still match the prefix.
			if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
				if !s.walk(ctx, key, prefix, yield) {
					return false
				}
			}
			continue
		}
		if !strings.HasPrefix(key, prefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted while listing
		}
		if err != nil {
			return yield(storage.ObjectInfo{}, fmt.Errorf("list %q: %w", prefix, err))
		}
		if !yield(storage.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil) {
			return false
		}
	}
	return true
}

// Delete implements storage.Store; it also removes folders left empty.
func (s *Store) Delete(_ context.Context, keys ...string) error {
	var errs []error
	for _, key := range keys {
		p, err := s.path(key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete %s: %w", key, err))
			continue
		}
		s.pruneEmpty(filepath.Dir(p))
	}
	return errors.Join(errs...)
}

// pruneEmpty removes dir and its parents up to the root while they are empty.
func (s *Store) pruneEmpty(dir string) {
	for dir != s.root && strings.HasPrefix(dir, s.root+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return // not empty, or gone: either way, stop
		}
		dir = filepath.Dir(dir)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s: %w", key, storage.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", key, err)
}

func errOr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
