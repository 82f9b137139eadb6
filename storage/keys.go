package storage

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyLen is the longest key accepted, S3's limit.
const MaxKeyLen = 1024

// CheckKey reports whether key may be stored by every adapter: non-empty UTF-8 of
// at most MaxKeyLen bytes, no NUL, not absolute, no empty, "." or ".." segments,
// no trailing slash. Adapters call it so that a key that works on file:// works on
// s3:// too, and no key can escape a file store's root.
func CheckKey(key string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why) }
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxKeyLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case !utf8.ValidString(key):
		return bad("not valid UTF-8")
	case strings.ContainsRune(key, 0):
		return bad("contains NUL")
	case strings.HasPrefix(key, "/"):
		return bad("absolute; keys are relative to the store")
	case strings.HasSuffix(key, "/"):
		return bad("ends with /")
	case strings.Contains(key, "\\"):
		return bad(`contains \`)
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return bad("has an empty path segment")
		case ".", "..":
			return bad("has a . or .. segment")
		}
	}
	return nil
}
