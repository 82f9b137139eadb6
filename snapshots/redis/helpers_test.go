package redis_test

import (
	"errors"
	"strings"

	"github.com/drkit/drkit/storage"
)

func splitLines(s string) []string { return strings.Split(strings.ReplaceAll(s, "\r", ""), "\n") }

func cut(line, prefix string) (string, bool) { return strings.CutPrefix(line, prefix) }

func errorsIsNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
