package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// ErrChecksum is returned, wrapped with the region and key, when an object read
// back does not match what its manifest recorded.
var ErrChecksum = errors.New("checksum mismatch")

// Object is what a caller's manifest records of an object written through a
// Pipeline, and what a read needs to verify it.
type Object struct {
	Key string `json:"key"`
	// Size is the number of bytes stored (after compression and encryption).
	Size int64 `json:"size"`
	// PlainSize and SHA256 (hex) describe the plaintext. PlainSize -1 means
	// unknown (the SHA-256 alone is then checked).
	PlainSize   int64  `json:"plain_size"`
	SHA256      string `json:"sha256"`
	Compression string `json:"compression"` // "zstd" or "none"
	Encryption  string `json:"encryption"`  // "age" or "none"
}

// Pipeline writes and reads objects of one region: plaintext -> SHA-256 -> zstd ->
// age -> Store, and back. Order matters: compressing before encrypting is the only
// order that compresses at all. zstd frames carry no checksum of their own
// (WithEncoderCRC(false)): every read checks the plaintext's SHA-256, and the
// frame's xxhash cost 5% of a base backup's CPU for nothing more.
type Pipeline struct {
	Store  Store
	Region string
	// Level is the zstd level (1 fastest .. 22 smallest); 0 stores uncompressed.
	Level int
	// Recipients encrypt; none means the region stores plaintext.
	Recipients []age.Recipient
	// Identities decrypt; only restores need them, so drd can run without them.
	Identities []age.Identity
}

// Put streams r through the pipeline into key and returns the object's record.
// Nothing is staged on disk; memory is the compressor's window and the store's
// part buffers.
func (p *Pipeline) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	obj := Object{Key: key, Compression: "none", Encryption: "none"}
	if p.Level > 0 {
		obj.Compression = "zstd"
	}
	if len(p.Recipients) > 0 {
		obj.Encryption = "age"
	}
	pr, pw := io.Pipe()
	plain := &hashCounter{h: sha256.New()}
	encodeErr := make(chan error, 1)
	go func() {
		err := p.encode(pw, io.TeeReader(r, plain))
		pw.CloseWithError(err)
		encodeErr <- err
	}()
	stored := &countReader{r: pr}
	putErr := p.Store.Put(ctx, key, stored)
	pr.CloseWithError(errors.New("store stopped reading")) // unblocks the encoder if Put failed
	if err := <-encodeErr; err != nil && putErr == nil {
		putErr = err
	}
	if putErr != nil {
		return Object{}, fmt.Errorf("region %s: %w", p.Region, putErr)
	}
	obj.Size, obj.PlainSize, obj.SHA256 = stored.n, plain.n, hex.EncodeToString(plain.h.Sum(nil))
	return obj, nil
}

// encode writes src to w compressed and encrypted as configured.
func (p *Pipeline) encode(w io.Writer, src io.Reader) error {
	var closers []io.Closer
	if len(p.Recipients) > 0 {
		ew, err := age.Encrypt(w, p.Recipients...)
		if err != nil {
			return fmt.Errorf("encrypt: %w", err)
		}
		w, closers = ew, append(closers, ew)
	}
	if p.Level > 0 {
		zw, err := zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(p.Level)), zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			return fmt.Errorf("compress: %w", err)
		}
		w, closers = zw, append(closers, zw)
	}
	if _, err := io.Copy(w, src); err != nil {
		for _, c := range closers {
			c.Close()
		}
		return err
	}
	// Close innermost first: the compressor flushes into the encryptor.
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i].Close(); err != nil {
			return fmt.Errorf("finish stream: %w", err)
		}
	}
	return nil
}

// Open reads obj back: it decrypts and decompresses, and once the plaintext ends
// checks its size and SHA-256 and the stored size against obj. A mismatch, a
// corrupt frame or a failed decryption is an error naming the region and key.
func (p *Pipeline) Open(ctx context.Context, obj Object) (io.ReadCloser, error) {
	rc, err := p.Store.Get(ctx, obj.Key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("region %s: %w", p.Region, err)
	}
	v := &verifier{obj: obj, region: p.Region, stored: &countReader{r: rc}, plain: &hashCounter{h: sha256.New()}, closers: []io.Closer{rc}}
	var r io.Reader = v.stored
	if obj.Encryption == "age" {
		if len(p.Identities) == 0 {
			rc.Close()
			return nil, fmt.Errorf("region %s: %s is encrypted and no age identity is configured: set the region's encryption.identity_file", p.Region, obj.Key)
		}
		if r, err = age.Decrypt(r, p.Identities...); err != nil {
			rc.Close()
			return nil, fmt.Errorf("region %s: decrypt %s: %w (is the identity file the one matching this region's recipients?)", p.Region, obj.Key, err)
		}
	}
	if obj.Compression == "zstd" {
		// One goroutine per stream: callers that read many objects (a restore's
		// chunks, wal-fetch's prefetch) already read them in parallel, and
		// per-stream concurrency only multiplies buffers.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("region %s: decompress %s: %w", p.Region, obj.Key, err)
		}
		v.closers = append(v.closers, closerFunc(func() error { zr.Close(); return nil }))
		r = zr
	}
	v.r = r
	return v, nil
}

// verifier checks the plaintext against the object's record at EOF.
type verifier struct {
	r       io.Reader
	obj     Object
	region  string
	stored  *countReader
	plain   *hashCounter
	closers []io.Closer
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.plain.Write(p[:n])
	switch {
	case err == io.EOF:
		if verr := v.check(); verr != nil {
			return n, verr
		}
		return n, io.EOF
	case err != nil && v.stored.err == nil:
		// The store delivered bytes fine, so zstd or age rejected them: corrupt.
		return n, fmt.Errorf("region %s: %s: %w (%v)", v.region, v.obj.Key, ErrChecksum, err)
	case err != nil:
		return n, fmt.Errorf("region %s: read %s: %w", v.region, v.obj.Key, err)
	}
	return n, nil
}

func (v *verifier) check() error {
	// Drain what the decoders left unread (padding, trailers) to count every byte.
	if _, err := io.Copy(io.Discard, v.stored); err != nil {
		return fmt.Errorf("region %s: read %s: %w", v.region, v.obj.Key, err)
	}
	sum := hex.EncodeToString(v.plain.h.Sum(nil))
	switch {
	case v.obj.PlainSize >= 0 && v.plain.n != v.obj.PlainSize:
		return fmt.Errorf("region %s: %s: %w: %d plaintext bytes, the manifest says %d", v.region, v.obj.Key, ErrChecksum, v.plain.n, v.obj.PlainSize)
	case v.stored.n != v.obj.Size:
		return fmt.Errorf("region %s: %s: %w: %d stored bytes, the manifest says %d", v.region, v.obj.Key, ErrChecksum, v.stored.n, v.obj.Size)
	case sum != v.obj.SHA256:
		return fmt.Errorf("region %s: %s: %w: SHA-256 %s, the manifest says %s", v.region, v.obj.Key, ErrChecksum, sum, v.obj.SHA256)
	}
	return nil
}

func (v *verifier) Close() error {
	var errs []error
	for i := len(v.closers) - 1; i >= 0; i-- {
		errs = append(errs, v.closers[i].Close())
	}
	return errors.Join(errs...)
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

type countReader struct {
	r   io.Reader
	n   int64
	err error // the first error other than EOF
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

type hashCounter struct {
	h hash.Hash
	n int64
}

func (h *hashCounter) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	return h.h.Write(p)
}

// ParseRecipients parses age recipients (age1... public keys), one per entry.
func ParseRecipients(keys []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for i, k := range keys {
		rs, err := age.ParseRecipients(bytes.NewReader([]byte(k)))
		if err != nil {
			return nil, fmt.Errorf("age recipient %d: %w", i+1, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}
