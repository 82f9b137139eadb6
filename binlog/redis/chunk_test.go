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

// The stream is scanned in whatever pieces the socket gives: a prefix of a
// command is "not yet" (never an error, never a command), the whole of it
// is one command with its name and first argument, and a bad length is an
// error as soon as its line is whole.
func TestScanCommandInPieces(t *testing.T) {
	cmd := "*3\r\n$3\r\nSET\r\n$5\r\nstamp\r\n$10\r\n0123456789\r\n"
	for i := range len(cmd) {
		sc, err := scanCommand([]byte(cmd[:i]))
		if err != nil || sc.n != 0 {
			t.Fatalf("prefix %q: %+v, %v; want not yet", cmd[:i], sc, err)
		}
	}
	sc, err := scanCommand([]byte(cmd + "*1\r\n"))
	if err != nil || sc.n != len(cmd) || string(sc.name) != "SET" || string(sc.sub) != "stamp" || sc.args != 3 {
		t.Fatalf("whole: %+v, %v", sc, err)
	}
	for _, bad := range []string{"*x\r\n", "*0\r\n", "+OK\r\n", "*1\r\n$-1\r\n", "*1\r\n$99999999999999999999\r\n", "*1\r\n$" + strings.Repeat("9", 40)} {
		if _, err := scanCommand([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzScanCommand(f *testing.F) {
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"))
	f.Add([]byte("*1\r\n$4\r\nPING\r\n*1\r\n"))
	f.Add([]byte("*2\r\n$6\r\nSELECT\r\n$1\r\n0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := scanCommand(b)
		if err != nil || sc.n == 0 {
			return
		}
		if sc.n > len(b) {
			t.Fatalf("length %d over the %d bytes given", sc.n, len(b))
		}
		one, err := scanOne(b[:sc.n])
		if err != nil || one.n != sc.n || one.args != sc.args || !bytes.Equal(one.name, sc.name) || !bytes.Equal(one.sub, sc.sub) {
			t.Fatalf("the scanned command alone: %+v, %v (scanned %+v)", one, err, sc)
		}
	})
}
