package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// fenceKey carries the fencing token of the work a context runs.
type fenceKey struct{}

// WithFence returns a context whose work runs under lease generation gen
// (drd.ha): what it writes carries gen, so that a paused old holder's late
// writes lose to the new holder's (see internal/lease).
func WithFence(ctx context.Context, gen uint64) context.Context {
	return context.WithValue(ctx, fenceKey{}, gen)
}

// Fence returns the lease generation ctx's work runs under, 0 without a
// lease.
func Fence(ctx context.Context) uint64 {
	g, _ := ctx.Value(fenceKey{}).(uint64)
	return g
}

// FenceSuffix is what a log chunk's name carries of ctx's fence: "-f<gen>",
// or "" without a lease (names stay as they were before drd.ha).
func FenceSuffix(ctx context.Context) string {
	if g := Fence(ctx); g > 0 {
		return fmt.Sprintf("-f%d", g)
	}
	return ""
}

// CutFence splits a chunk name's base into what precedes its fence suffix
// and the fence (0 when it has none). ok is false for a malformed suffix
// (fences start at 1). The name is untrusted store input.
func CutFence(base string) (rest string, fence uint64, ok bool) {
	i := strings.LastIndex(base, "-f")
	if i < 0 {
		return base, 0, true
	}
	g, err := strconv.ParseUint(base[i+2:], 10, 64)
	if err != nil || g == 0 {
		return "", 0, false
	}
	return base[:i], g, true
}

// LatestFence keeps, of each run of adjacent refs that same says are one
// chunk position (numbered alike, or starting at one log position), the refs
// of the highest fence, and returns the others as late: a drd that lost its
// lease while paused mid-upload (SIGSTOP, a long GC, a partition) may finish
// an upload after the new holder wrote that position, and the new holder's
// chain is the one that goes on. A lone ref is kept whatever its fence, and
// refs of equal fence are all kept (the chain's own checks judge them).
func LatestFence[T any](refs []T, same func(a, b T) bool, fence func(T) uint64) (kept, late []T) {
	for i := 0; i < len(refs); {
		j, top := i, fence(refs[i])
		for j < len(refs) && same(refs[i], refs[j]) {
			top = max(top, fence(refs[j]))
			j++
		}
		for _, r := range refs[i:j] {
			if fence(r) == top {
				kept = append(kept, r)
			} else {
				late = append(late, r)
			}
		}
		i = j
	}
	return kept, late
}

// FenceTag is the fence suffix of a chunk name's base ("-f<gen>", or ""): a
// chunk's place in the log (a copy's slot) includes it, so that an old
// holder's late chunk and the new holder's, numbered alike, are two places
// rather than two histories.
func FenceTag(base string) string {
	if _, f, ok := CutFence(base); ok && f > 0 {
		return "-f" + strconv.FormatUint(f, 10)
	}
	return ""
}
