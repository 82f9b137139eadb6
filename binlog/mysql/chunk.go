package mysql

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/drkit/drkit/storage"
)

// chunkMagic starts every chunk's plaintext; the number is the format version.
const chunkMagic = "drkit-binlog 1\n"

// ChunkHeader describes one chunk: the transactions it holds continue Start and
// end at End, so chunk n+1's Start equals chunk n's End unless there is a gap.
type ChunkHeader struct {
	Start     string `json:"start"` // GTID position before the first transaction
	End       string `json:"end"`   // GTID position after the last
	FirstGTID string `json:"first_gtid"`
	LastGTID  string `json:"last_gtid"`
	FirstTime int64  `json:"first_time"` // commit times, Unix seconds
	LastTime  int64  `json:"last_time"`
	Txns      int    `json:"txns"`
	// Checksum is the events' checksum algorithm: "CRC32" or "NONE".
	Checksum      string `json:"checksum"`
	ServerVersion string `json:"server_version,omitempty"`
}

// encodeChunk writes a chunk of txns, which all share one format description
// event, continuing position start; end is the position after it.
func encodeChunk(start Pos, txns []*Txn, serverVersion string) (h ChunkHeader, data []byte, end Pos, err error) {
	if len(txns) == 0 {
		return h, nil, nil, errors.New("empty chunk")
	}
	fde := txns[0].FDE
	alg, err := checksumAlg(fde)
	if err != nil {
		return h, nil, nil, err
	}
	end = start.Clone()
	size := 0
	for _, t := range txns {
		end.Advance(t.GTID)
		size += t.Size
	}
	h = ChunkHeader{
		Start: start.String(), End: end.String(),
		FirstGTID: txns[0].GTID.String(), LastGTID: txns[len(txns)-1].GTID.String(),
		FirstTime: int64(txns[0].Time), LastTime: int64(txns[len(txns)-1].Time),
		Txns: len(txns), Checksum: "NONE", ServerVersion: serverVersion,
	}
	if alg == 1 {
		h.Checksum = "CRC32"
	}
	hj, _ := json.Marshal(h)
	buf := bytes.NewBuffer(make([]byte, 0, len(chunkMagic)+len(hj)+1+4+len(fde)+size))
	buf.WriteString(chunkMagic)
	buf.Write(hj)
	buf.WriteByte('\n')
	buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(fde))))
	buf.Write(fde)
	for _, t := range txns {
		for _, ev := range t.Events {
			buf.Write(ev)
		}
	}
	return h, buf.Bytes(), end, nil
}

// encodedChunk is transactions encoded as a chunk, hashed, ready for a
// region's pipeline to compress (once per level for every region, see
// storage.Plain), encrypt and store.
type encodedChunk struct {
	h     ChunkHeader
	end   Pos
	plain *storage.Plain
	sum   string // SHA-256 of plain.Data, hex: the object's name
}

// encode encodes and hashes txns as the chunk after start.
func encode(start Pos, txns []*Txn, serverVersion string) (*encodedChunk, error) {
	h, data, end, err := encodeChunk(start, txns, serverVersion)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return &encodedChunk{h: h, end: end, plain: &storage.Plain{Data: data}, sum: hex.EncodeToString(sum[:])}, nil
}

// chunkReader reads a chunk's header, its format description event and then its
// events one by one, without holding the chunk in memory.
type chunkReader struct {
	r      *bufio.Reader
	Header ChunkHeader
	FDE    []byte
}

// maxFDE bounds a chunk's format description event (a few hundred bytes in
// practice): the header is read before the chunk's checksum can be checked,
// so its lengths are untrusted and must not decide an allocation.
const maxFDE = 64 << 10

// newChunkReader reads a chunk's header and format description event. The
// header line is bounded by the reader's buffer (1 MiB), the event by maxFDE.
func newChunkReader(r io.Reader) (*chunkReader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(chunkMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != chunkMagic {
		return nil, fmt.Errorf("not a drkit binlog chunk (format %q)", bytes.TrimSpace(magic))
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, fmt.Errorf("chunk header: %w", noEOF(err))
	}
	c := &chunkReader{r: br}
	if err := json.Unmarshal(line, &c.Header); err != nil {
		return nil, fmt.Errorf("chunk header: %w", err)
	}
	var n [4]byte
	if _, err := io.ReadFull(br, n[:]); err != nil {
		return nil, fmt.Errorf("chunk format description: %w", err)
	}
	size := binary.LittleEndian.Uint32(n[:])
	if size < headerLen || size > maxFDE {
		return nil, fmt.Errorf("chunk format description of %d bytes: the chunk is corrupt", size)
	}
	c.FDE = make([]byte, size)
	if _, err := io.ReadFull(br, c.FDE); err != nil {
		return nil, fmt.Errorf("chunk format description: %w", err)
	}
	return c, nil
}

// next returns the next raw event, or io.EOF after the last.
func (c *chunkReader) next() ([]byte, error) {
	head, err := c.r.Peek(headerLen)
	if err == io.EOF && len(head) == 0 {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("chunk event header: %w", noEOF(err))
	}
	size := binary.LittleEndian.Uint32(head[9:])
	if size < headerLen || size > 1<<30 {
		return nil, fmt.Errorf("chunk event of %d bytes: the chunk is corrupt", size)
	}
	ev := make([]byte, size)
	if _, err := io.ReadFull(c.r, ev); err != nil {
		return nil, fmt.Errorf("chunk event: %w", noEOF(err))
	}
	return ev, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
