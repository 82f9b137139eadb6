package redis

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// conn is one replica connection to a Redis primary.
type conn struct {
	nc  net.Conn
	r   *bufio.Reader
	wmu sync.Mutex // ACKs are written while the stream is read
}

// dialTimeout bounds the TCP (and TLS) connect.
const dialTimeout = 10 * time.Second

// dial connects to the server a redis:// or rediss:// DSN names and
// authenticates as it says (AUTH [user] password).
func dial(ctx context.Context, dsn string) (*conn, error) {
	opt, err := goredis.ParseURL(dsn)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	d := &net.Dialer{Timeout: dialTimeout}
	var nc net.Conn
	if opt.TLSConfig != nil {
		nc, err = (&tls.Dialer{NetDialer: d, Config: opt.TLSConfig}).DialContext(ctx, "tcp", opt.Addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", opt.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", opt.Addr, err)
	}
	c := &conn{nc: nc, r: bufio.NewReaderSize(nc, 256<<10)}
	if opt.Password != "" {
		args := []string{"AUTH"}
		if opt.Username != "" {
			args = append(args, opt.Username)
		}
		if _, err := c.call(ctx, append(args, opt.Password)...); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: authentication failed (check the dsn's user and password): %w", opt.Addr, err)
		}
	}
	return c, nil
}

// Close closes the connection.
func (c *conn) Close() error { return c.nc.Close() }

// send writes one command as a RESP array of bulk strings.
func (c *conn) send(args ...string) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := c.nc.Write(b.Bytes())
	return err
}

// call sends a command and reads its one-line reply; -ERR is an error.
func (c *conn) call(ctx context.Context, args ...string) (string, error) {
	if err := c.send(args...); err != nil {
		return "", err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetReadDeadline(time.Now()) })
	defer stop()
	line, err := c.readLine()
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(line, "-") {
		return "", fmt.Errorf("%s: %s", args[0], line[1:])
	}
	return line, nil
}

// readLine reads one reply line without its CRLF, skipping the bare
// newlines a primary sends to keep the link alive while it prepares an RDB.
func (c *conn) readLine() (string, error) {
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			return line, nil
		}
	}
}

// Sync is what a primary answered PSYNC.
type Sync struct {
	// Full: +FULLRESYNC, an RDB follows; else +CONTINUE.
	Full bool
	// ReplID is the history the stream belongs to (for +CONTINUE, the
	// primary's current id: a new one after a failover).
	ReplID string
	// Offset is the offset of the stream's first byte less one: the
	// replica's offset before it (FULLRESYNC's offset).
	Offset int64
}

// psync runs the replica handshake and asks for the stream after offset of
// history replid ("" asks for a full resync). rdbOnly asks for the RDB
// alone (a backup), where the server supports it.
func (c *conn) psync(ctx context.Context, replid string, offset int64, rdbOnly bool) (Sync, error) {
	if _, err := c.call(ctx, "REPLCONF", "listening-port", "0"); err != nil {
		return Sync{}, err
	}
	if _, err := c.call(ctx, "REPLCONF", "capa", "eof", "capa", "psync2"); err != nil {
		return Sync{}, err
	}
	if rdbOnly {
		// Redis 7+: the primary sends the RDB and no stream after it, and
		// keeps no replica buffer for it. An older one refuses, and the
		// connection is closed after the RDB all the same.
		_, _ = c.call(ctx, "REPLCONF", "rdb-only", "1")
	}
	id, off := "?", "-1"
	if replid != "" {
		id, off = replid, strconv.FormatInt(offset+1, 10)
	}
	line, err := c.call(ctx, "PSYNC", id, off)
	if err != nil {
		return Sync{}, err
	}
	return parseSync(line, replid, offset)
}

// parseSync reads +FULLRESYNC <replid> <offset> or +CONTINUE [<replid>].
func parseSync(line, replid string, offset int64) (Sync, error) {
	f := strings.Fields(line)
	switch {
	case len(f) == 3 && f[0] == "+FULLRESYNC":
		off, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || !isReplID(f[1]) {
			return Sync{}, fmt.Errorf("PSYNC: unexpected reply %q", line)
		}
		return Sync{Full: true, ReplID: f[1], Offset: off}, nil
	case len(f) >= 1 && f[0] == "+CONTINUE":
		s := Sync{ReplID: replid, Offset: offset}
		if len(f) == 2 {
			if !isReplID(f[1]) {
				return Sync{}, fmt.Errorf("PSYNC: unexpected reply %q", line)
			}
			s.ReplID = f[1]
		}
		return s, nil
	}
	return Sync{}, fmt.Errorf("PSYNC: unexpected reply %q", line)
}

// eofMarkLen is the length of the mark that ends a diskless RDB transfer.
const eofMarkLen = 40

// readRDB copies the RDB that follows +FULLRESYNC to w: "$<len>" then len
// bytes (disk-based), or "$EOF:<mark>" then bytes up to the mark (diskless).
func (c *conn) readRDB(w io.Writer) (int64, error) {
	line, err := c.readLine()
	if err != nil {
		return 0, fmt.Errorf("RDB transfer: %w", err)
	}
	if mark, ok := strings.CutPrefix(line, "$EOF:"); ok {
		if len(mark) != eofMarkLen {
			return 0, fmt.Errorf("RDB transfer: bad EOF mark %q", line)
		}
		return copyToMark(w, c.r, []byte(mark))
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(line, "$"), 10, 64)
	if err != nil || !strings.HasPrefix(line, "$") || n < 0 {
		return 0, fmt.Errorf("RDB transfer: unexpected %q", line)
	}
	m, err := io.CopyN(w, c.r, n)
	if err != nil {
		return m, fmt.Errorf("RDB transfer: %d of %d bytes: %w", m, n, err)
	}
	return m, nil
}

// copyToMark copies r to w up to (not including) mark, which ends the data.
// The last len(mark) bytes read are held back until more arrive.
func copyToMark(w io.Writer, r *bufio.Reader, mark []byte) (int64, error) {
	var held []byte
	var n int64
	buf := make([]byte, 64<<10)
	for {
		k, err := r.Read(buf)
		held = append(held, buf[:k]...)
		if bytes.HasSuffix(held, mark) {
			out := held[:len(held)-len(mark)]
			_, werr := w.Write(out)
			return n + int64(len(out)), werr
		}
		if len(held) > len(mark) {
			out := held[:len(held)-len(mark)]
			if _, werr := w.Write(out); werr != nil {
				return n, werr
			}
			n += int64(len(out))
			held = append(held[:0], held[len(held)-len(mark):]...)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("RDB transfer: %w", err)
		}
	}
}

// maxBulk bounds one argument of the stream: Redis's own proto-max-bulk-len
// default. A stream is from the server we dialed, but a bound keeps a
// broken one from allocating without end.
const maxBulk = 512 << 20

// maxLine bounds a RESP header line ("*<n>" or "$<len>").
const maxLine = 32

// scanned is one whole command at the start of a buffer, as scanCommand
// finds it: its length and its first two arguments (they point into the
// buffer).
type scanned struct {
	n         int
	name, sub []byte
	args      int
}

// scanCommand finds the whole command (a RESP array of bulk strings) at the
// start of b without copying or allocating. n is 0 while b holds only part
// of it; err is set when b does not start with one.
func scanCommand(b []byte) (scanned, error) {
	var sc scanned
	n, p, err := scanHeader(b, 0, '*', 1<<20)
	if err != nil || p == 0 {
		return sc, err
	}
	if n < 1 {
		return sc, fmt.Errorf("replication stream: bad array length %q", truncate(b[:p]))
	}
	sc.args = n
	for i := range n {
		l, q, err := scanHeader(b, p, '$', maxBulk)
		if err != nil || q == 0 {
			return scanned{}, err
		}
		end := q + l + 2
		if end > len(b) {
			return scanned{}, nil
		}
		if b[end-2] != '\r' || b[end-1] != '\n' {
			return scanned{}, errors.New("replication stream: a bulk string does not end with CRLF")
		}
		switch i {
		case 0:
			sc.name = b[q : q+l]
		case 1:
			sc.sub = b[q : q+l]
		}
		p = end
	}
	sc.n = p
	return sc, nil
}

// scanHeader reads "<kind><number>\r\n" at b[p:]: the number and where the
// line ends (0 while b holds only part of it).
func scanHeader(b []byte, p int, kind byte, limit int) (int, int, error) {
	if p >= len(b) {
		return 0, 0, nil
	}
	if b[p] != kind {
		return 0, 0, fmt.Errorf("replication stream: expected %q, got %q", kind, truncate(b[p:]))
	}
	i := bytes.IndexByte(b[p:min(len(b), p+maxLine)], '\n')
	if i < 0 {
		if len(b)-p >= maxLine {
			return 0, 0, fmt.Errorf("replication stream: header line too long: %q", truncate(b[p:]))
		}
		return 0, 0, nil
	}
	line := b[p+1 : p+i]
	if len(line) < 2 || line[len(line)-1] != '\r' {
		return 0, 0, fmt.Errorf("replication stream: bad header line %q", truncate(b[p:p+i+1]))
	}
	n := 0
	for _, c := range line[:len(line)-1] {
		if c < '0' || c > '9' || n > limit {
			return 0, 0, fmt.Errorf("replication stream: bad length %q", truncate(b[p:p+i+1]))
		}
		n = n*10 + int(c-'0')
	}
	if n > limit {
		return 0, 0, fmt.Errorf("replication stream: length %d over %d", n, limit)
	}
	return n, p + i + 1, nil
}

// scanOne is scanCommand of a record that must hold exactly one whole
// command (a chunk's, read from a store).
func scanOne(b []byte) (scanned, error) {
	sc, err := scanCommand(b)
	switch {
	case err != nil:
		return sc, err
	case sc.n == 0:
		return sc, errors.New("an incomplete command")
	case sc.n != len(b):
		return sc, errors.New("more than one command in one record")
	}
	return sc, nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}
