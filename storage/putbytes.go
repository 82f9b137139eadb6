package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// logWindow is the zstd window of objects written by PutBytes. Log chunks
// gain little from a longer history, and a small window keeps the encoders
// (and the readers' decoders) small.
const logWindow = 1 << 20

// logEncoders holds one EncodeAll encoder per zstd level, shared by every
// Pipeline. Log shippers write an object per region every flush interval; a
// new streaming encoder for each one allocated (and zeroed) megabytes of
// window and tables: most of an idle drd's CPU, and at start, when the open
// WAL segments are sent again, a burst of over 100 MiB. This is a cache of
// codecs, not configuration.
var logEncoders sync.Map // level -> *zstd.Encoder

func logEncoder(level int) (*zstd.Encoder, error) {
	if e, ok := logEncoders.Load(level); ok {
		return e.(*zstd.Encoder), nil
	}
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithWindowSize(logWindow), zstd.WithLowerEncoderMem(true), zstd.WithEncoderConcurrency(2), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, err
	}
	actual, _ := logEncoders.LoadOrStore(level, e)
	return actual.(*zstd.Encoder), nil
}

// bulkSize is the size above which PutBytes encodes with the default window:
// base backup chunks (32 MiB) and snapshot parts (16 MiB and a row). With the
// 1 MiB window the encoder shifts its history every few blocks: on 32 MiB
// chunks, a third of a backup's CPU. Log chunks and sealed WAL segments
// (16 MiB) stay below it: drd ships those while it idles, and the default
// window's encoders would stay in its memory (70 instead of 44 MiB measured).
const bulkSize = 16 << 20

// bulkEncoders are the encoders of objects over bulkSize, one per call in
// flight and per kind; a pool, so that the GC drops them after a backup
// instead of drd holding their windows while it idles.
var bulkEncoders sync.Map // bulkKind -> *sync.Pool of *zstd.Encoder

type bulkKind struct {
	level int
	crc   bool
}

// encodeBulk compresses data with a pooled default-window encoder.
func encodeBulk(level int, data []byte) ([]byte, error) {
	return encodePooled(bulkKind{level: level}, data)
}

func encodePooled(kind bulkKind, data []byte) ([]byte, error) {
	p, _ := bulkEncoders.LoadOrStore(kind, &sync.Pool{})
	pool := p.(*sync.Pool)
	enc, _ := pool.Get().(*zstd.Encoder)
	if enc == nil {
		var err error
		enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(kind.level)), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(kind.crc))
		if err != nil {
			return nil, err
		}
	}
	defer pool.Put(enc)
	return enc.EncodeAll(data, make([]byte, 0, len(data)/8)), nil
}

// CompressFrame returns data as a zstd frame at level that carries its
// content checksum (xxhash64 of data), which a decoder checks at the
// frame's end. It is for callers that store the compressed bytes as an
// object's plaintext, so that the object's SHA-256 is taken over the smaller
// compressed bytes (snapshot parts: hashing the plaintext was 13 % of a
// MariaDB snapshot's client CPU), while a decode still proves the original.
func CompressFrame(level int, data []byte) ([]byte, error) {
	if level <= 0 {
		return nil, fmt.Errorf("compress: level %d is not a zstd level", level)
	}
	return encodePooled(bulkKind{level: level, crc: true}, data)
}

// Plain is one plaintext written to several regions: it is compressed (or
// framed, see Frame) once per zstd level however many regions take it
// (compression is most of a backup's CPU, and every region doing its own
// multiplied it by the number of regions); each region still encrypts for
// its own recipients. Safe for concurrent use by the regions' writers.
type Plain struct {
	Data []byte

	mu        sync.Mutex
	encodings map[encodingKind]*encoding
}

// encodingKind is one way of encoding a Plain: the pipeline's compression at
// a level, or a checked frame (Frame).
type encodingKind struct {
	level int
	frame bool
}

type encoding struct {
	once sync.Once
	out  []byte
	sum  string // SHA-256 of out, hex (frames only)
	err  error
}

// encoded returns the encoding of kind, made by fn on first use.
func (pl *Plain) encoded(kind encodingKind, fn func(e *encoding)) *encoding {
	pl.mu.Lock()
	if pl.encodings == nil {
		pl.encodings = map[encodingKind]*encoding{}
	}
	e := pl.encodings[kind]
	if e == nil {
		e = &encoding{}
		pl.encodings[kind] = e
	}
	pl.mu.Unlock()
	e.once.Do(func() { fn(e) })
	return e
}

// compressed returns Data compressed at level, compressing it on first use.
func (pl *Plain) compressed(level int) ([]byte, error) {
	e := pl.encoded(encodingKind{level: level}, func(e *encoding) { e.out, e.err = compress(level, pl.Data) })
	return e.out, e.err
}

// Frame returns Data as CompressFrame makes it at level (Data itself at
// level 0) and the hex SHA-256 of that, made once per level however many
// regions store it. The caller stores the frame as an object's plaintext.
func (pl *Plain) Frame(level int) (frame []byte, sha256Hex string, err error) {
	level = max(level, 0)
	e := pl.encoded(encodingKind{level: level, frame: true}, func(e *encoding) {
		e.out = pl.Data
		if level > 0 {
			if e.out, e.err = CompressFrame(level, pl.Data); e.err != nil {
				return
			}
		}
		sum := sha256.Sum256(e.out)
		e.sum = hex.EncodeToString(sum[:])
	})
	return e.out, e.sum, e.err
}

// compress encodes data at level with the encoder suited to its size.
func compress(level int, data []byte) ([]byte, error) {
	if len(data) > bulkSize {
		return encodeBulk(level, data)
	}
	enc, err := logEncoder(level)
	if err != nil {
		return nil, err
	}
	return enc.EncodeAll(data, make([]byte, 0, len(data)/2+64)), nil
}

// Compress compresses pl at the pipeline's level now rather than in
// PutPlain (once per level, as there), so that a caller can do it ahead of
// the upload, beside other work.
func (p *Pipeline) Compress(pl *Plain) error {
	if p.Level <= 0 {
		return nil
	}
	if _, err := pl.compressed(p.Level); err != nil {
		return fmt.Errorf("region %s: compress: %w", p.Region, err)
	}
	return nil
}

// PutBytes stores data under obj.Key, as Put does, for data already in
// memory (log chunks, base backup chunks): it is compressed and encrypted in
// memory and handed to the store with its size known, without Put's pipe,
// goroutine and streaming encoder. Memory is one encoded copy. obj is
// p.Describe(data) with Key set: log objects are named by their SHA-256, so
// the caller has hashed data already.
func (p *Pipeline) PutBytes(ctx context.Context, obj Object, data []byte) (Object, error) {
	return p.PutPlain(ctx, obj, &Plain{Data: data})
}

// PutPlain is PutBytes for a plaintext that other regions store too. An obj
// whose Compression is "none" is stored uncompressed whatever the pipeline's
// level (data compressed already, such as an archive the database compressed).
func (p *Pipeline) PutPlain(ctx context.Context, obj Object, pl *Plain) (Object, error) {
	key := obj.Key
	out := pl.Data
	zstdOn := p.Level > 0 && obj.Compression != "none"
	obj.Compression = "none"
	if zstdOn {
		var err error
		if out, err = pl.compressed(p.Level); err != nil {
			return Object{}, fmt.Errorf("region %s: compress: %w", p.Region, err)
		}
		obj.Compression = "zstd"
	}
	if len(p.Recipients) > 0 {
		var buf bytes.Buffer
		buf.Grow(len(out) + 256)
		w, err := age.Encrypt(&buf, p.Recipients...)
		if err != nil {
			return Object{}, fmt.Errorf("region %s: encrypt: %w", p.Region, err)
		}
		if _, err := w.Write(out); err != nil {
			return Object{}, fmt.Errorf("region %s: encrypt: %w", p.Region, err)
		}
		if err := w.Close(); err != nil {
			return Object{}, fmt.Errorf("region %s: encrypt: %w", p.Region, err)
		}
		out = buf.Bytes()
	}
	if err := p.Store.Put(ctx, key, bytes.NewReader(out)); err != nil {
		return Object{}, fmt.Errorf("region %s: %w", p.Region, err)
	}
	obj.Size = int64(len(out))
	return obj, nil
}
