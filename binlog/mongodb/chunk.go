package mongodb

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// chunkMagic starts every chunk object's plaintext.
const chunkMagic = "DRKITMO1\n"

// ChunkHeader describes a chunk: the entries a region's reader read while
// its high-water mark went from Start to End, in chain Chain.
type ChunkHeader struct {
	// Chain is where the chain began: the high-water mark its first chunk
	// starts at.
	Chain   TS  `json:"chain"`
	Start   TS  `json:"start"`
	End     TS  `json:"end"`
	Entries int `json:"entries"`
	// FirstMS and LastMS bound the entries' wall times (Unix ms).
	FirstMS int64 `json:"first_ms"`
	LastMS  int64 `json:"last_ms"`
	// SealMS is when drd cut the chunk: a region holding the chain to its
	// end holds every entry drd read before then.
	SealMS int64 `json:"seal_ms"`
}

func (h ChunkHeader) check() error {
	if h.Start < h.Chain || h.End < h.Start || h.Entries < 0 || h.LastMS < h.FirstMS || h.SealMS < 0 || h.FirstMS < 0 {
		return fmt.Errorf("chunk header: inconsistent %+v", h)
	}
	return nil
}

// encodeChunk is the chunk's plaintext: the magic, the header as one JSON
// line, then the entries' BSON documents as the server sent them.
func encodeChunk(h ChunkHeader, entries []Entry) []byte {
	hj, _ := json.Marshal(h)
	n := len(chunkMagic) + len(hj) + 1
	for _, e := range entries {
		n += len(e.Raw)
	}
	out := make([]byte, 0, n)
	out = append(out, chunkMagic...)
	out = append(out, hj...)
	out = append(out, '\n')
	for _, e := range entries {
		out = append(out, e.Raw...)
	}
	return out
}

// maxHeaderLine bounds the header line a decoder reads: a store is untrusted.
const maxHeaderLine = 4 << 10

// ChunkReader reads a chunk's entries one at a time.
type ChunkReader struct {
	Header ChunkHeader
	r      *bufio.Reader
	n      int
}

// NewChunkReader reads and checks a chunk's magic and header.
func NewChunkReader(r io.Reader) (*ChunkReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(chunkMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != chunkMagic {
		return nil, errors.New("not a drkit MongoDB oplog chunk (bad magic)")
	}
	line, err := br.ReadSlice('\n')
	if err != nil || len(line) > maxHeaderLine {
		return nil, errors.New("chunk header: no header line")
	}
	var h ChunkHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, fmt.Errorf("chunk header: %w", err)
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	return &ChunkReader{Header: h, r: br}, nil
}

// Next returns the next entry, or io.EOF after the last one the header
// counts (a chunk with more or fewer is an error).
func (cr *ChunkReader) Next() (Entry, error) {
	if cr.n == cr.Header.Entries {
		// Reading to the end is what makes the pipeline check the SHA-256.
		switch _, err := cr.r.ReadByte(); {
		case err == io.EOF:
			return Entry{}, io.EOF
		case err != nil:
			return Entry{}, err
		}
		return Entry{}, fmt.Errorf("chunk: data after its %d entries", cr.n)
	}
	raw, err := ReadDoc(cr.r)
	if err != nil {
		return Entry{}, fmt.Errorf("chunk: entry %d of %d: %w", cr.n+1, cr.Header.Entries, err)
	}
	e, err := ParseEntry(raw)
	if err != nil {
		return Entry{}, fmt.Errorf("chunk: entry %d of %d: %w", cr.n+1, cr.Header.Entries, err)
	}
	cr.n++
	return e, nil
}

// ReadDoc reads one BSON document from r (io.EOF before its first byte):
// its length is bounded and its bytes validated, as it comes from a store.
func ReadDoc(r io.Reader) (bson.Raw, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, unexpected(err)
	}
	l := binary.LittleEndian.Uint32(lb[:])
	if l < 5 || l > maxEntry {
		return nil, fmt.Errorf("bad BSON document length %d", l)
	}
	raw := make(bson.Raw, l)
	copy(raw, lb[:])
	if _, err := io.ReadFull(r, raw[4:]); err != nil {
		return nil, unexpected(err)
	}
	if err := raw.Validate(); err != nil {
		return nil, fmt.Errorf("BSON document: %w", err)
	}
	return raw, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
