package redis

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// chunkMagic starts every chunk object's plaintext.
const chunkMagic = "DRKITRS1\n"

// ChunkHeader describes a chunk: the stream bytes (start, end] of history
// ReplID it covers (end - start bytes, PINGs and REPLCONFs included), and
// the commands it keeps.
type ChunkHeader struct {
	ReplID string `json:"replid"`
	// Prev, on the first chunk of a history that continues another (a
	// replica promoted after a failover keeps its primary's offsets under
	// a new replid, PSYNC2), is the history it continues at Start.
	Prev     string `json:"prev,omitempty"`
	Start    int64  `json:"start"`
	End      int64  `json:"end"`
	Commands int    `json:"commands"`
	// DB is the database selected at the chunk's start (-1: none yet on
	// this connection; the primary selects one before its first write).
	DB int `json:"db"`
	// EndDB is the database selected at its end, where a resumed stream
	// (which need not SELECT again) goes on.
	EndDB int `json:"end_db"`
	// FirstMS and LastMS are when drd received the first and last command
	// (Unix milliseconds): the stream carries no time of its own.
	FirstMS int64 `json:"first_ms"`
	LastMS  int64 `json:"last_ms"`
	// SealMS is when drd cut the chunk (Unix milliseconds; see Catalog).
	SealMS int64 `json:"seal_ms,omitempty"`
}

// Command is one command of the stream as the primary sent it.
type Command struct {
	// MS is when drd received it (Unix milliseconds); every command of a
	// MULTI/EXEC block has the block's first time.
	MS int64
	// End is the stream offset after the command: a base backup at offset
	// O already holds every command with End <= O.
	End int64
	// RESP is the command as sent: a RESP array of bulk strings.
	RESP []byte
}

// encodeChunk is the chunk's plaintext: the magic, the header as one JSON
// line, then the commands' records (appendRecord).
func encodeChunk(h ChunkHeader, cmds []Command) []byte {
	var body []byte
	for _, c := range cmds {
		body = appendRecord(body, c.MS, c.End-h.Start, c.RESP)
	}
	return chunkBytes(h, body)
}

// appendRecord appends one command's record to a chunk's body: its time,
// its end offset less the chunk's start and its length as uvarints, then
// its RESP.
func appendRecord(body []byte, ms, end int64, resp []byte) []byte {
	body = binary.AppendUvarint(body, uint64(ms))
	body = binary.AppendUvarint(body, uint64(end))
	body = binary.AppendUvarint(body, uint64(len(resp)))
	return append(body, resp...)
}

// chunkBytes is a chunk's plaintext: the magic, the header, the body.
func chunkBytes(h ChunkHeader, body []byte) []byte {
	hj, _ := json.Marshal(h)
	out := make([]byte, 0, len(chunkMagic)+len(hj)+1+len(body))
	out = append(out, chunkMagic...)
	out = append(out, hj...)
	out = append(out, '\n')
	return append(out, body...)
}

// maxHeaderLine bounds the header line a decoder reads: a store is untrusted.
const maxHeaderLine = 4 << 10

// ChunkReader reads a chunk's commands one at a time.
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
		return nil, errors.New("not a drkit Redis stream chunk (bad magic)")
	}
	line, err := br.ReadSlice('\n')
	if err != nil || len(line) > maxHeaderLine {
		return nil, errors.New("chunk header: no header line")
	}
	var h ChunkHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, fmt.Errorf("chunk header: %w", err)
	}
	if !isReplID(h.ReplID) || (h.Prev != "" && !isReplID(h.Prev)) || h.Start < 0 || h.End < h.Start || h.Commands < 0 || h.LastMS < h.FirstMS || h.SealMS < 0 ||
		h.DB < -1 || h.DB > maxDB || h.EndDB < -1 || h.EndDB > maxDB {
		return nil, fmt.Errorf("chunk header: inconsistent %+v", h)
	}
	return &ChunkReader{Header: h, r: br}, nil
}

// Next returns the next command, or io.EOF after the last one the header
// counts (a chunk with more or fewer is an error).
func (cr *ChunkReader) Next() (Command, error) {
	if cr.n == cr.Header.Commands {
		// Reading to the end is what makes the pipeline check the SHA-256.
		switch _, err := cr.r.ReadByte(); {
		case err == io.EOF:
			return Command{}, io.EOF
		case err != nil:
			return Command{}, err
		}
		return Command{}, fmt.Errorf("chunk: data after its %d commands", cr.n)
	}
	ms, err := binary.ReadUvarint(cr.r)
	if err != nil {
		return Command{}, fmt.Errorf("chunk: command %d of %d: %w", cr.n+1, cr.Header.Commands, unexpected(err))
	}
	end, err := binary.ReadUvarint(cr.r)
	if err != nil || end == 0 || end > uint64(cr.Header.End-cr.Header.Start) {
		return Command{}, fmt.Errorf("chunk: command %d of %d: bad offset", cr.n+1, cr.Header.Commands)
	}
	l, err := binary.ReadUvarint(cr.r)
	if err != nil || l == 0 || l > maxBulk+1<<20 || l > end {
		return Command{}, fmt.Errorf("chunk: command %d of %d: bad length", cr.n+1, cr.Header.Commands)
	}
	c := Command{MS: int64(ms), End: cr.Header.Start + int64(end), RESP: make([]byte, l)}
	if _, err := io.ReadFull(cr.r, c.RESP); err != nil {
		return Command{}, fmt.Errorf("chunk: command %d of %d: %w", cr.n+1, cr.Header.Commands, unexpected(err))
	}
	if err := checkCommand(c.RESP); err != nil {
		return Command{}, fmt.Errorf("chunk: command %d of %d: %w", cr.n+1, cr.Header.Commands, err)
	}
	cr.n++
	return c, nil
}

// maxDB bounds a database number read from a store.
const maxDB = 1 << 16

// refused are commands a restore never sends, whatever a store holds: a
// primary's stream carries data writes, and these would reconfigure the
// target, write files on its host or make it dial another one.
var refused = map[string]bool{
	"config": true, "replicaof": true, "slaveof": true, "migrate": true, "debug": true, "module": true,
	"acl": true, "shutdown": true, "save": true, "bgsave": true, "bgrewriteaof": true, "failover": true,
	"cluster": true, "client": true, "sync": true, "psync": true, "monitor": true,
}

// checkCommand requires one whole RESP array of bulk strings and refuses
// the commands a restore must never send (refused).
func checkCommand(resp []byte) error {
	sc, err := scanOne(resp)
	if err != nil {
		return err
	}
	if name := strings.ToLower(string(sc.name)); refused[name] {
		return fmt.Errorf("%s is not a command a primary's stream carries: refused", strings.ToUpper(name))
	}
	return nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
