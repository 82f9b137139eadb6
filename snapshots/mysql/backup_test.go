package mysql

import (
	"bytes"
	"database/sql"
	"database/sql/driver"
	"math/rand/v2"
	"testing"
)

// appendRowByByte is the format's definition, byte by byte.
func appendRowByByte(buf []byte, vals []sql.RawBytes) []byte {
	for i, v := range vals {
		if i > 0 {
			buf = append(buf, '\t')
		}
		if v == nil {
			buf = append(buf, '\\', 'N')
			continue
		}
		for _, c := range v {
			switch c {
			case '\\':
				buf = append(buf, '\\', '\\')
			case '\t':
				buf = append(buf, '\\', 't')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case 0:
				buf = append(buf, '\\', '0')
			default:
				buf = append(buf, c)
			}
		}
	}
	return append(buf, '\n')
}

// TestAppendRowEscapes compares appendRow with the byte-by-byte definition on
// rows full of the bytes LOAD DATA escapes, NULLs and empty values.
func TestAppendRowEscapes(t *testing.T) {
	alphabet := []byte("ab\\\t\n\r\x00\xff'\"N")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		vals := make([]sql.RawBytes, 1+rng.IntN(4))
		for i := range vals {
			switch rng.IntN(5) {
			case 0: // NULL
			case 1:
				vals[i] = sql.RawBytes{}
			default:
				v := make([]byte, rng.IntN(40))
				for j := range v {
					v[j] = alphabet[rng.IntN(len(alphabet))]
				}
				vals[i] = v
			}
		}
		dvals := make([]driver.Value, len(vals))
		for i, v := range vals {
			if v != nil {
				dvals[i] = []byte(v)
			}
		}
		got, err := appendRow([]byte("x"), dvals)
		if want := appendRowByByte([]byte("x"), vals); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("row %q: got %q, want %q", vals, got, want)
		}
	}
}

// TestAppendRowNumbers: numbers in binary rows are printed as the server
// prints them; a value of a type the driver should not return is an error.
func TestAppendRowNumbers(t *testing.T) {
	got, err := appendRow(nil, []driver.Value{int64(-9223372036854775808), uint64(18446744073709551615), float32(3.4028235e38), 1.7976931348623157e308, 0.1, nil})
	want := "-9223372036854775808\t18446744073709551615\t3.4028235e+38\t1.7976931348623157e+308\t0.1\t\\N\n"
	if err != nil || string(got) != want {
		t.Fatalf("got %q (%v), want %q", got, err, want)
	}
	if _, err := appendRow(nil, []driver.Value{true}); err == nil {
		t.Fatal("a bool was written without error")
	}
}
