package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"time"
)

// ErrNotFound is returned, wrapped with the key, when an object does not exist.
// Callers test it with errors.Is.
var ErrNotFound = errors.New("object not found")

// ErrInvalidKey is returned, wrapped, for a key no adapter may store (see CheckKey).
var ErrInvalidKey = errors.New("invalid object key")

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key     string    `json:"key"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
	// ETag is the store's tag of the content, "" when the store keeps none. Two
	// objects in one store with equal non-empty tags hold equal bytes.
	ETag string `json:"etag,omitempty"`
}

// Store is an object store holding one region's catalog. Keys are slash-separated
// paths (see CheckKey). Implementations are safe for concurrent use.
//
// Errors: a missing object is ErrNotFound (wrapped); transient failures (timeouts,
// throttling, 5xx) are retried with backoff and jitter inside the adapter, so an
// error returned is either permanent or survived every retry.
type Store interface {
	// Put stores all of r under key, replacing any object there. r may be of unknown
	// length. Put is atomic: readers see the previous object or the complete new
	// one, never a part. If r also has a Size() int64 method, Put may use it to plan
	// the upload.
	Put(ctx context.Context, key string, r io.Reader) error

	// Get returns the object's bytes from offset; length < 0 means to the end. An
	// offset past the end is an error; an offset equal to the size yields no bytes.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)

	// Stat returns the object's size, time and tag.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// List yields every object whose key starts with prefix, in lexical key order.
	// Iteration stops at the first error, which is yielded last.
	List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error]

	// Delete removes the objects; keys that do not exist are not an error.
	Delete(ctx context.Context, keys ...string) error

	// String names the store for messages and logs, without secrets.
	String() string
}

// Sizer is implemented by readers that know how many bytes they will yield
// (*bytes.Reader, *strings.Reader, SizedReader). Put uses it to plan multipart.
type Sizer interface {
	Size() int64
}

// SizedReader wraps a reader whose length is known from elsewhere (a Stat, a
// manifest), so that a Store can plan the upload.
type SizedReader struct {
	io.Reader
	N int64
}

// Size implements Sizer.
func (s SizedReader) Size() int64 { return s.N }

// SizeOf returns r's length if it can be known without reading it, else -1.
func SizeOf(r io.Reader) int64 {
	switch v := r.(type) {
	case Sizer:
		return v.Size()
	case interface{ Stat() (fs.FileInfo, error) }:
		fi, err := v.Stat()
		if err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return -1
}

// ErrExists is returned, wrapped with the key, by PutIfAbsent when the key is
// already taken.
var ErrExists = errors.New("object already exists")

// ExclusiveCreator is implemented by stores that can create an object only if
// its key is free, atomically (file: link(2); S3: PutObject with
// If-None-Match: *). Scheduled jobs use it as a lease so that two drd
// instances never run the same activation of a job.
type ExclusiveCreator interface {
	// PutIfAbsent stores r under key unless an object is there, in which case
	// it returns ErrExists (wrapped) and changes nothing.
	PutIfAbsent(ctx context.Context, key string, r io.Reader) error
}

// ErrChanged is returned, wrapped with the key, by PutIfVersion when the
// object is no longer the version the caller read (or is gone).
var ErrChanged = errors.New("object changed since it was read")

// Swapper is implemented by stores that can replace a small object only if
// it is still the version the caller read: compare-and-swap (S3: PutObject
// with If-Match on the ETag; file: under an exclusive lock, comparing a
// digest of the content). Leases are built on it with ExclusiveCreator.
type Swapper interface {
	// GetVersion returns a small object's bytes and its version, an opaque
	// token that changes with every write.
	GetVersion(ctx context.Context, key string) (data []byte, version string, err error)
	// PutIfVersion replaces key with data if its version is still version,
	// and returns the new version; otherwise it returns ErrChanged (wrapped)
	// and changes nothing.
	PutIfVersion(ctx context.Context, key string, data []byte, version string) (string, error)
}

// AsSwapper returns s's compare-and-swap, or an error naming the store.
func AsSwapper(s Store) (Swapper, error) {
	w, ok := Unwrap(s).(Swapper)
	if !ok {
		return nil, fmt.Errorf("%s cannot replace objects conditionally (compare-and-swap), which leases need", s)
	}
	return w, nil
}

// PutIfAbsent creates key in s if it is free; see ExclusiveCreator.
func PutIfAbsent(ctx context.Context, s Store, key string, r io.Reader) error {
	c, ok := Unwrap(s).(ExclusiveCreator)
	if !ok {
		return fmt.Errorf("put %s: %s cannot create objects exclusively, which scheduled jobs need as a lease", key, s)
	}
	return c.PutIfAbsent(ctx, key, r)
}

// noFsyncKey marks a context whose puts need not reach stable storage.
type noFsyncKey struct{}

// WithoutFsync returns a context whose puts a store may acknowledge before
// they reach stable storage: the small log chunks of zero-RPO remote_write
// mode, where a commit waits for each. Only file:// honours it (it skips its
// fsyncs); an object store's acknowledgement is durable either way.
func WithoutFsync(ctx context.Context) context.Context {
	return context.WithValue(ctx, noFsyncKey{}, true)
}

// FsyncWanted reports whether puts under ctx must be fsynced.
func FsyncWanted(ctx context.Context) bool {
	v, _ := ctx.Value(noFsyncKey{}).(bool)
	return !v
}
