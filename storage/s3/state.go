package s3

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The state of a multipart upload lives in StateDir/uploads/<hash>.jsonl: a header
// line, then one line per stored part, each appended and fsynced as the part
// completes. It is a cache: the server's ListParts is the truth, and the state only
// adds the checksum of each part's source bytes so a resumed upload can prove the
// source still has them.

type stateHeader struct {
	Store    string    `json:"store"`
	Key      string    `json:"key"`
	UploadID string    `json:"upload_id"`
	PartSize int64     `json:"part_size"`
	Total    int64     `json:"total"`
	Started  time.Time `json:"started"`
}

type statePart struct {
	N    int32  `json:"n"`
	ETag string `json:"etag"`
	Sum  string `json:"sum"`
	Size int64  `json:"size"`
}

type uploadState struct {
	path   string // "" when StateDir is unset: nothing is kept
	header stateHeader
	parts  map[int32]statePart

	mu sync.Mutex
	f  *os.File
}

func (s *Store) statePath(full string) string {
	if s.opts.StateDir == "" {
		return ""
	}
	h := sha256.Sum256([]byte(s.String() + "\n" + full))
	return filepath.Join(s.opts.StateDir, "uploads", hex.EncodeToString(h[:16])+".jsonl")
}

// loadState returns the recorded upload of full if it was planned as p. When one
// exists with another plan (the source changed size), it returns its upload id as
// stale so the caller can abort it.
func (s *Store) loadState(full string, p plan) (st *uploadState, stale string) {
	path := s.statePath(full)
	if path == "" {
		return nil, ""
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, ""
	}
	defer f.Close()
	st = &uploadState{path: path, parts: map[int32]statePart{}}
	sc := bufio.NewScanner(f)
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &st.header) != nil || st.header.UploadID == "" {
		os.Remove(path)
		return nil, ""
	}
	if st.header.Store != s.String() || st.header.Key != full || st.header.PartSize != p.base || st.header.Total != p.total {
		os.Remove(path)
		return nil, st.header.UploadID
	}
	for sc.Scan() {
		var sp statePart
		if json.Unmarshal(sc.Bytes(), &sp) != nil {
			break // a line torn by a crash: the parts before it stand
		}
		st.parts[sp.N] = sp
	}
	return st, ""
}

// newState records a fresh upload.
func (s *Store) newState(full, id string, p plan) (*uploadState, error) {
	st := &uploadState{path: s.statePath(full), parts: map[int32]statePart{},
		header: stateHeader{Store: s.String(), Key: full, UploadID: id, PartSize: p.base, Total: p.total, Started: time.Now().UTC()}}
	if st.path == "" {
		return st, nil
	}
	if err := os.MkdirAll(filepath.Dir(st.path), 0o700); err != nil {
		return nil, fmt.Errorf("upload state folder: %w", err)
	}
	line, _ := json.Marshal(st.header)
	if err := os.WriteFile(st.path, append(line, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("write upload state: %w", err)
	}
	return st, nil
}

// add appends a stored part and fsyncs, so a crash right after loses nothing.
func (st *uploadState) add(p statePart) error {
	if st == nil || st.path == "" {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.f == nil {
		f, err := os.OpenFile(st.path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open upload state: %w", err)
		}
		st.f = f
	}
	line, _ := json.Marshal(p)
	if _, err := st.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("record part %d: %w", p.N, err)
	}
	return st.f.Sync()
}

// remove forgets the upload.
func (st *uploadState) remove() {
	if st == nil || st.path == "" {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.f != nil {
		st.f.Close()
		st.f = nil
	}
	if err := os.Remove(st.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return
	}
}
