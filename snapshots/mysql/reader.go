package mysql

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	driver "github.com/go-sql-driver/mysql"
)

// The snapshot's worker connections are go-mysql clients, unlike the rest
// of the package (go-sql-driver through database/sql): go-mysql's streaming
// reader hands every row to a callback in buffers it reuses, while a
// database/sql driver boxes each value in an interface and allocates.
// Measured with throwaway readers over the bench's 8 tables of 500k rows,
// prepared statements, values only counted: go-sql-driver's driver-level
// rows 1.46-1.53 user + 0.48-0.73 sys CPU-s, go-mysql 1.14-1.25 + 0.43-0.48.
// In drctl backup of those tables: 3.70-3.77 -> 3.59-3.68 CPU-s, and the
// server's 2.35-2.40 -> 2.26-2.27 (caches dropped, 3 runs each).

// worker is one connection holding the snapshot's consistent transaction.
type worker struct {
	c *client.Conn
}

// dialWorker connects as the DSN's user, over its network and TLS settings.
func dialWorker(ctx context.Context, cfg *driver.Config) (*worker, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dialer := &net.Dialer{}
	c, err := client.ConnectWithDialer(ctx, cfg.Net, cfg.Addr, cfg.User, cfg.Passwd, "", dialer.DialContext,
		func(c *client.Conn) error {
			c.SetTLSConfig(cfg.TLS)
			c.SetAttributes(map[string]string{"program_name": "drctl backup"})
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}
	return &worker{c: c}, nil
}

// exec runs a statement that returns no rows.
func (w *worker) exec(q string) error {
	_, err := w.c.Execute(q)
	return err
}

// close ends the snapshot's transaction and the connection.
func (w *worker) close() {
	w.c.Execute("ROLLBACK")
	w.c.Close()
}

// eachRow runs q as a prepared statement and calls fn with each row, which
// is valid only until fn returns. A prepared statement's rows come in the
// binary protocol: the server sends numbers as binary values instead of
// printing them (4 sbtest tables of 500k rows: server CPU 1.65 -> 1.27 s).
// Cancelling ctx closes the connection: go-mysql's reads take no context.
func (w *worker) eachRow(ctx context.Context, q string, fn func(row []gomysql.FieldValue, fields []*gomysql.Field) error) error {
	stop := context.AfterFunc(ctx, func() { w.c.Close() })
	defer stop()
	st, err := w.c.Prepare(q)
	if err != nil {
		return w.failed(ctx, err)
	}
	var r gomysql.Result
	err = st.ExecuteSelectStreaming(&r, func(row []gomysql.FieldValue) error { return fn(row, r.Fields) }, nil)
	if err != nil {
		return w.failed(ctx, err)
	}
	return w.failed(ctx, st.Close())
}

// failed prefers the context's error to the closed connection's.
func (w *worker) failed(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// bounds runs q, a SELECT MIN(k), MAX(k) of an integer key; ok is false
// when the table is empty or a bound is beyond int64 (an unsigned BIGINT):
// such a table is read whole.
func (w *worker) bounds(ctx context.Context, q string) (lo, hi int64, ok bool, err error) {
	var vals [2]int64
	err = w.eachRow(ctx, q, func(row []gomysql.FieldValue, _ []*gomysql.Field) error {
		for i := range vals {
			switch row[i].Type {
			case gomysql.FieldValueTypeNull:
				return nil
			case gomysql.FieldValueTypeSigned:
				vals[i] = row[i].AsInt64()
			case gomysql.FieldValueTypeUnsigned:
				if row[i].AsUint64() > 1<<63-1 {
					return nil
				}
				vals[i] = int64(row[i].AsUint64())
			default:
				return fmt.Errorf("%s returned a value of kind %d, not an integer", q, row[i].Type)
			}
		}
		ok = true
		return nil
	})
	return vals[0], vals[1], ok, err
}

// appendRow encodes one row in LOAD DATA's default format: fields separated by
// tabs, rows by newlines, \N for NULL, backslash escapes. Numbers are printed
// as the server prints them (strconv, shortest float that reads back; a
// FLOAT column at single precision). Dates and times come printed by go-mysql.
func appendRow(buf []byte, row []gomysql.FieldValue, fields []*gomysql.Field) ([]byte, error) {
	for i := range row {
		if i > 0 {
			buf = append(buf, '\t')
		}
		v := &row[i]
		switch v.Type {
		case gomysql.FieldValueTypeNull:
			buf = append(buf, '\\', 'N')
		case gomysql.FieldValueTypeString:
			buf = appendEscaped(buf, v.AsString())
		case gomysql.FieldValueTypeSigned:
			buf = strconv.AppendInt(buf, v.AsInt64(), 10)
		case gomysql.FieldValueTypeUnsigned:
			buf = strconv.AppendUint(buf, v.AsUint64(), 10)
		case gomysql.FieldValueTypeFloat:
			bits := 64
			if fields[i].Type == gomysql.MYSQL_TYPE_FLOAT {
				bits = 32
			}
			buf = strconv.AppendFloat(buf, v.AsFloat64(), 'g', -1, bits)
		default:
			return buf, fmt.Errorf("column %s: go-mysql returned a value of kind %d, which a snapshot does not write", fields[i].Name, v.Type)
		}
	}
	return append(buf, '\n'), nil
}

// escapes maps the bytes LOAD DATA's default format escapes to the letter
// after the backslash; 0 means the byte goes as it is.
var escapes = [256]byte{'\\': '\\', '\t': 't', '\n': 'n', '\r': 'r', 0: '0'}

// appendEscaped appends v with LOAD DATA's backslash escapes. Runs of bytes
// that need no escape are appended whole, and found 8 bytes at a time (the
// byte loop was a tenth of drctl's CPU in a snapshot; with the word test
// drctl took 3.46-3.54 CPU-s instead of 3.59-3.68 on the bench's tables).
func appendEscaped(buf, v []byte) []byte {
	start, j := 0, 0
	for j < len(v) {
		for j+8 <= len(v) && !needsEscape(binary.LittleEndian.Uint64(v[j:])) {
			j += 8
		}
		for end := min(j+8, len(v)); j < end; j++ {
			if e := escapes[v[j]]; e != 0 {
				buf = append(append(buf, v[start:j]...), '\\', e)
				start = j + 1
			}
		}
	}
	return append(buf, v[start:]...)
}

const ones, highs = 0x0101010101010101, 0x8080808080808080

// needsEscape tells whether any of w's 8 bytes is one LOAD DATA escapes
// (NUL, tab, newline, carriage return, backslash). For each of them, w XOR
// the byte repeated has a zero byte where w holds it, and x-ones &^ x sets
// the high bit of some byte exactly when x has a zero byte.
func needsEscape(w uint64) bool {
	z := func(x uint64) uint64 { return (x - ones) &^ x }
	return (z(w)|z(w^ones*'\t')|z(w^ones*'\n')|z(w^ones*'\r')|z(w^ones*'\\'))&highs != 0
}
