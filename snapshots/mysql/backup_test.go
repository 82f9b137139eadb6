package mysql

import (
	"bytes"
	"database/sql"
	"math"
	"math/rand/v2"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
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
		row := make([]gomysql.FieldValue, len(vals))
		fields := make([]*gomysql.Field, len(vals))
		for i, v := range vals {
			fields[i] = &gomysql.Field{Type: gomysql.MYSQL_TYPE_VAR_STRING}
			if v != nil {
				row[i] = gomysql.NewFieldValue(gomysql.FieldValueTypeString, 0, v)
			}
		}
		got, err := appendRow([]byte("x"), row, fields)
		if want := appendRowByByte([]byte("x"), vals); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("row %q: got %q, want %q", vals, got, want)
		}
	}
}

// TestAppendRowNumbers: numbers in binary rows are printed as the server
// prints them (a FLOAT column at single precision); a value of a kind
// go-mysql should not return is an error.
func TestAppendRowNumbers(t *testing.T) {
	field := func(typ byte) *gomysql.Field { return &gomysql.Field{Name: []byte("c"), Type: typ} }
	row := []gomysql.FieldValue{
		gomysql.NewFieldValue(gomysql.FieldValueTypeSigned, uint64(1)<<63, nil),
		gomysql.NewFieldValue(gomysql.FieldValueTypeUnsigned, 18446744073709551615, nil),
		gomysql.NewFieldValue(gomysql.FieldValueTypeFloat, math.Float64bits(float64(float32(3.4028235e38))), nil),
		gomysql.NewFieldValue(gomysql.FieldValueTypeFloat, math.Float64bits(1.7976931348623157e308), nil),
		gomysql.NewFieldValue(gomysql.FieldValueTypeFloat, math.Float64bits(0.1), nil),
		gomysql.NewFieldValue(gomysql.FieldValueTypeFloat, math.Float64bits(float64(float32(0.1))), nil),
		gomysql.NewFieldValue(gomysql.FieldValueTypeNull, 0, nil),
	}
	fields := []*gomysql.Field{field(gomysql.MYSQL_TYPE_LONGLONG), field(gomysql.MYSQL_TYPE_LONGLONG),
		field(gomysql.MYSQL_TYPE_FLOAT), field(gomysql.MYSQL_TYPE_DOUBLE), field(gomysql.MYSQL_TYPE_DOUBLE),
		field(gomysql.MYSQL_TYPE_FLOAT), field(gomysql.MYSQL_TYPE_LONG)}
	got, err := appendRow(nil, row, fields)
	want := "-9223372036854775808\t18446744073709551615\t3.4028235e+38\t1.7976931348623157e+308\t0.1\t0.1\t\\N\n"
	if err != nil || string(got) != want {
		t.Fatalf("got %q (%v), want %q", got, err, want)
	}
	bad := []gomysql.FieldValue{gomysql.NewFieldValue(gomysql.FieldValueType(99), 0, nil)}
	if _, err := appendRow(nil, bad, fields[:1]); err == nil {
		t.Fatal("a value of an unknown kind was written without error")
	}
}

// TestNeedsEscape checks the word-at-a-time test against the escape table:
// every byte value at every position of a word, and random words.
func TestNeedsEscape(t *testing.T) {
	byByte := func(w uint64) bool {
		for i := range 8 {
			if escapes[byte(w>>(8*i))] != 0 {
				return true
			}
		}
		return false
	}
	for pos := range 8 {
		for b := range 256 {
			w := uint64(0x6161616161616161)&^(0xff<<(8*pos)) | uint64(b)<<(8*pos)
			if needsEscape(w) != byByte(w) {
				t.Fatalf("byte %#x at %d: needsEscape %v", b, pos, needsEscape(w))
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1_000_000 {
		w := rng.Uint64()
		if needsEscape(w) != byByte(w) {
			t.Fatalf("word %#016x: needsEscape %v", w, needsEscape(w))
		}
	}
}
