package redis

import (
	"bytes"
	"strings"
	"testing"
)

// A store is untrusted: a chunk that carries a command no primary's stream
// does (one that would reconfigure the restore target, write files on its
// host or make it dial another) or two commands in one record is refused.
func TestChunkReaderRefusesCommandsAStreamNeverCarries(t *testing.T) {
	h := ChunkHeader{ReplID: strings.Repeat("a", 40), Start: 0, End: 200, Commands: 1}
	for _, tc := range []struct{ resp, want string }{
		{"*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$3\r\ndir\r\n$4\r\n/etc\r\n", "CONFIG is not a command a primary's stream carries"},
		{"*3\r\n$9\r\nREPLICAOF\r\n$4\r\nevil\r\n$4\r\n6379\r\n", "REPLICAOF is not"},
		{"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", "more than one command"},
		{"*1\r\n$4\r\nPINGxx", "bulk string does not end with CRLF"},
	} {
		cr, err := NewChunkReader(bytes.NewReader(encodeChunk(h, []Command{{MS: 1, End: 100, RESP: []byte(tc.resp)}})))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cr.Next(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.resp, err, tc.want)
		}
	}
	ok := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
	cr, _ := NewChunkReader(bytes.NewReader(encodeChunk(h, []Command{{MS: 1, End: 100, RESP: []byte(ok)}})))
	if c, err := cr.Next(); err != nil || string(c.RESP) != ok {
		t.Errorf("a SET: %q, %v", c.RESP, err)
	}
}
