package mysql

import (
	"bytes"
	"database/sql"
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
		got, want := appendRow([]byte("x"), vals), appendRowByByte([]byte("x"), vals)
		if !bytes.Equal(got, want) {
			t.Fatalf("row %q: got %q, want %q", vals, got, want)
		}
	}
}
