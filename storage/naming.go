package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Logs (WAL, binlog) are named "<base>.<sha256>.<codec>": the plaintext's
// SHA-256 and how it was written are in the name, so a listing alone is enough
// to read and verify an object, and no index object can disagree with it.

// CodecExt encodes how an object was written, for its name.
func CodecExt(obj Object) string {
	switch {
	case obj.Compression == "zstd" && obj.Encryption == "age":
		return "zst.age"
	case obj.Compression == "zstd":
		return "zst"
	case obj.Encryption == "age":
		return "age"
	}
	return "raw"
}

// ParseObjectName splits name, "<base>.<sha256>.<codec>", and fills the Object
// stored at key with size bytes. ok is false for a name not of that form.
func ParseObjectName(key, name string, size int64) (base string, obj Object, ok bool) {
	codecs := map[string][2]string{"raw": {"none", "none"}, "zst": {"zstd", "none"}, "age": {"none", "age"}, "zst.age": {"zstd", "age"}}
	for ext, cd := range codecs {
		rest, found := strings.CutSuffix(name, "."+ext)
		if !found {
			continue
		}
		i := strings.LastIndexByte(rest, '.')
		if i < 0 || len(rest)-i-1 != 64 {
			continue
		}
		obj = Object{Key: key, Size: size, SHA256: rest[i+1:], Compression: cd[0], Encryption: cd[1], PlainSize: -1}
		return rest[:i], obj, true
	}
	return "", Object{}, false
}

// Describe returns the record a Put of data through p will produce, less the
// key and stored size: what a "<base>.<sha256>.<codec>" name needs before the
// write.
func (p *Pipeline) Describe(data []byte) Object {
	sum := sha256.Sum256(data)
	return p.Described(hex.EncodeToString(sum[:]), int64(len(data)))
}

// Described is Describe for plaintext already hashed: the same bytes go to
// every region, and hashing them once per region would be wasted.
func (p *Pipeline) Described(sha256Hex string, plainSize int64) Object {
	obj := Object{SHA256: sha256Hex, PlainSize: plainSize, Compression: "none", Encryption: "none"}
	if p.Level > 0 {
		obj.Compression = "zstd"
	}
	if len(p.Recipients) > 0 {
		obj.Encryption = "age"
	}
	return obj
}
