package file

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/drkit/drkit/storage"
)

var _ storage.Swapper = (*Store)(nil)

// version is a digest of an object's bytes: the lease records written
// through PutIfVersion differ in every write (a counter), so equal digests
// mean the same write.
func version(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// GetVersion implements storage.Swapper.
func (s *Store) GetVersion(ctx context.Context, key string) ([]byte, string, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, "", err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, "", notFound(key, err)
	}
	return data, version(data), nil
}

// PutIfVersion implements storage.Swapper: under an exclusive flock(2) of
// the object's folder, the current bytes are compared with version and the
// new ones published by rename, so of two writers holding the same version
// exactly one wins.
func (s *Store) PutIfVersion(ctx context.Context, key string, data []byte, ver string) (string, error) {
	p, err := s.path(key)
	if err != nil {
		return "", err
	}
	unlock, err := lockDir(filepath.Dir(p))
	if errors.Is(err, fs.ErrNotExist) { // its folder went with it
		return "", fmt.Errorf("%s: %w (it is gone)", key, storage.ErrChanged)
	}
	if err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	defer unlock()
	cur, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%s: %w (it is gone)", key, storage.ErrChanged)
	case err != nil:
		return "", fmt.Errorf("put %s: %w", key, err)
	case version(cur) != ver:
		return "", fmt.Errorf("%s: %w", key, storage.ErrChanged)
	}
	if err := s.Put(ctx, key, bytes.NewReader(data)); err != nil {
		return "", err
	}
	return version(data), nil
}

// lockDir takes an exclusive flock of dir and returns its release.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}
