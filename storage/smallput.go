package storage

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// SmallObject is the largest plaintext PutBytes encodes in memory in one
// call; larger data goes through the streaming Put.
const SmallObject = 1 << 20

// smallEncoders holds one EncodeAll encoder per zstd level, shared by every
// Pipeline. Log shippers write a small object per region every flush
// interval; a new streaming encoder for each one allocated (and zeroed)
// megabytes of window and tables, which was most of an idle drd's CPU. This
// is a cache of stateless codecs, not configuration.
var smallEncoders sync.Map // level -> *zstd.Encoder

func smallEncoder(level int) (*zstd.Encoder, error) {
	if e, ok := smallEncoders.Load(level); ok {
		return e.(*zstd.Encoder), nil
	}
	// The window needs to span no more than one small object; lower encoder
	// memory keeps what the cache holds small.
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithWindowSize(SmallObject), zstd.WithLowerEncoderMem(true), zstd.WithEncoderConcurrency(2))
	if err != nil {
		return nil, err
	}
	actual, _ := smallEncoders.LoadOrStore(level, e)
	return actual.(*zstd.Encoder), nil
}

// PutBytes stores data under key, as Put does, for data already in memory
// (log chunks): up to SmallObject it is compressed and encrypted in memory
// and handed to the store with its size known, without Put's pipe and
// goroutine; larger data is streamed by Put.
func (p *Pipeline) PutBytes(ctx context.Context, key string, data []byte) (Object, error) {
	if len(data) > SmallObject {
		return p.Put(ctx, key, bytes.NewReader(data))
	}
	obj := p.Describe(data)
	obj.Key = key
	out := data
	if p.Level > 0 {
		enc, err := smallEncoder(p.Level)
		if err != nil {
			return Object{}, fmt.Errorf("region %s: compress: %w", p.Region, err)
		}
		out = enc.EncodeAll(data, make([]byte, 0, len(data)/2+64))
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
