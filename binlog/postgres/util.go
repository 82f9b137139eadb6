package postgres

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
