package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// CopyResult says what Copy did.
type CopyResult struct {
	Key        string `json:"key"`
	Size       int64  `json:"size"`
	Skipped    bool   `json:"skipped"`     // the target already held the same bytes
	ServerSide bool   `json:"server_side"` // copied by the store, not through drkit
}

// ServerSideCopier is implemented by stores that can copy an object from another
// store without its bytes passing through this process (S3 CopyObject and
// UploadPartCopy within one endpoint). handled is false when src is not such a
// store; the caller then streams.
type ServerSideCopier interface {
	CopyFrom(ctx context.Context, src Store, key string, size int64) (handled bool, err error)
}

// Wrapper is implemented by stores that decorate another (metrics), so that
// optional interfaces can be found on the store beneath.
type Wrapper interface {
	Unwrap() Store
}

// Unwrap returns the innermost store beneath any wrappers.
func Unwrap(s Store) Store {
	for {
		w, ok := s.(Wrapper)
		if !ok {
			return s
		}
		s = w.Unwrap()
	}
}

// Copy copies key from src to dst as stored (no decompression, no decryption). It
// skips an object dst already holds with the same size and content; copies
// server-side where the stores allow; otherwise streams through a multipart upload
// with bounded memory, resumable like any upload when dst has a state folder.
//
// Every copy is verified: the copy's bytes are read back and their SHA-256
// compared with the source's (hashed as it streamed, or read when the store
// copied server-side and the tags differ); a copy that differs is deleted and
// reported. That costs a read of the target, and proves the target holds the
// bytes, which a size check or a multipart ETag does not.
func Copy(ctx context.Context, src, dst Store, key string) (CopyResult, error) {
	res := CopyResult{Key: key}
	si, err := src.Stat(ctx, key)
	if err != nil {
		return res, fmt.Errorf("copy %s: source %s: %w", key, src, err)
	}
	res.Size = si.Size
	if di, err := dst.Stat(ctx, key); err == nil && di.Size == si.Size {
		same, err := sameContent(ctx, src, dst, si, di)
		if err != nil {
			return res, fmt.Errorf("copy %s: compare with %s: %w", key, dst, err)
		}
		if same {
			res.Skipped = true
			return res, nil
		}
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return res, fmt.Errorf("copy %s: target %s: %w", key, dst, err)
	}
	if c, ok := Unwrap(dst).(ServerSideCopier); ok {
		handled, err := c.CopyFrom(ctx, Unwrap(src), key, si.Size)
		if err != nil {
			return res, fmt.Errorf("copy %s from %s to %s: %w", key, src, dst, err)
		}
		if handled {
			res.ServerSide = true
			return res, verifyServerSide(ctx, src, dst, si)
		}
	}
	rc, err := src.Get(ctx, key, 0, -1)
	if err != nil {
		return res, fmt.Errorf("copy %s: read %s: %w", key, src, err)
	}
	defer rc.Close()
	h := sha256.New()
	if err := dst.Put(ctx, key, SizedReader{Reader: io.TeeReader(rc, h), N: si.Size}); err != nil {
		return res, fmt.Errorf("copy %s to %s: %w", key, dst, err)
	}
	return res, verifyCopy(ctx, dst, key, si.Size, h.Sum(nil))
}

// verifyServerSide checks a copy the store made: equal tags suffice (same
// endpoint, same bytes); else both are read.
func verifyServerSide(ctx context.Context, src, dst Store, si ObjectInfo) error {
	di, err := dst.Stat(ctx, si.Key)
	if err == nil && si.ETag != "" && di.ETag == si.ETag && di.Size == si.Size {
		return nil
	}
	want, err := digest(ctx, src, si.Key)
	if err != nil {
		return fmt.Errorf("copy %s: verify: %w", si.Key, err)
	}
	return verifyCopy(ctx, dst, si.Key, si.Size, want)
}

// verifyCopy reads dst's copy back and compares its size and SHA-256 with the
// source's; a bad copy is deleted.
func verifyCopy(ctx context.Context, dst Store, key string, size int64, sum []byte) error {
	di, err := dst.Stat(ctx, key)
	if err != nil {
		return fmt.Errorf("copy %s: check the copy in %s: %w", key, dst, err)
	}
	if di.Size != size {
		_ = dst.Delete(ctx, key)
		return fmt.Errorf("copy %s: %s held %d bytes, the source %d; the bad copy was deleted", key, dst, di.Size, size)
	}
	got, err := digest(ctx, dst, key)
	if err != nil {
		return fmt.Errorf("copy %s: verify: %w", key, err)
	}
	if !bytes.Equal(got, sum) {
		_ = dst.Delete(ctx, key)
		return fmt.Errorf("copy %s: the copy in %s differs from the source (SHA-256 %x, want %x); the bad copy was deleted", key, dst, got, sum)
	}
	return nil
}

// sameContent compares two objects of equal size: by tag when both stores have
// one (free), else by reading both and comparing SHA-256 (correct, and only
// needed when a copy is repeated between stores of different kinds).
func sameContent(ctx context.Context, src, dst Store, si, di ObjectInfo) (bool, error) {
	if si.ETag != "" && si.ETag == di.ETag {
		return true, nil
	}
	a, err := digest(ctx, src, si.Key)
	if err != nil {
		return false, err
	}
	b, err := digest(ctx, dst, di.Key)
	if err != nil {
		return false, err
	}
	return bytes.Equal(a, b), nil
}

func digest(ctx context.Context, s Store, key string) ([]byte, error) {
	rc, err := s.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", key, s, err)
	}
	return h.Sum(nil), nil
}
