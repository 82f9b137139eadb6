package storage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
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

// LinkedFence settles, of each run of adjacent refs that same says are one
// chunk position (numbered alike, or starting at one log position), which
// refs the log's chain goes through. A drd that lost its lease while paused
// mid-upload (SIGSTOP, a long GC, a partition) may finish an upload after
// the new holder wrote that position: usually the new holder's chunk, the
// higher fence, is the one the chain goes on from. Not always: with two
// holders paused in a row, the old holder's late chunk can land before the
// third holder lists, which then builds on it, and the middle holder's lands
// after. Fence order alone would then keep the middle one's, which the third
// holder's chunks do not continue: a permanent gap, and prune deleting the
// only copy of what the chain lacks.
//
// So positions are settled from the newest back. A position with a kept
// successor keeps, of its refs that links says the successor continues,
// those of the highest fence, and returns the others as late: the chain
// holds what they held, prune may delete them. A position no kept ref
// continues yet (the newest, or one before a gap) keeps the refs of its
// highest fence and returns the others as held: out of the chain for now,
// but not to be deleted, as the next holder may still build on one of them.
// A lone ref is kept whatever its fence, and refs of equal fence are kept
// together (the chain's own checks judge them). links may read the store
// (a chunk's header); its error ends the walk.
func LinkedFence[T any](refs []T, same func(a, b T) bool, fence func(T) uint64, links func(prev, next T) (bool, error)) (kept, late, held []T, err error) {
	var groups [][]T
	for i := 0; i < len(refs); {
		j := i + 1
		for j < len(refs) && same(refs[i], refs[j]) {
			j++
		}
		groups = append(groups, refs[i:j])
		i = j
	}
	var next *T // the first kept ref of the position after
	keptGroups := make([][]T, len(groups))
	for g := len(groups) - 1; g >= 0; g-- {
		group := groups[g]
		choice, linked, err := chooseFence(group, next, fence, links)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, r := range group {
			switch {
			case fence(r) == choice:
				keptGroups[g] = append(keptGroups[g], r)
			case linked:
				late = append(late, r)
			default:
				held = append(held, r)
			}
		}
		next = &keptGroups[g][0]
	}
	for _, k := range keptGroups {
		kept = append(kept, k...)
	}
	return kept, late, held, nil
}

// chooseFence returns the fence of group's refs to keep and whether a link
// to next decided it: the highest fence of a ref that next continues, else
// the highest fence.
func chooseFence[T any](group []T, next *T, fence func(T) uint64, links func(prev, next T) (bool, error)) (uint64, bool, error) {
	top := fence(group[0])
	for _, r := range group[1:] {
		top = max(top, fence(r))
	}
	if len(group) == 1 || next == nil {
		return top, false, nil
	}
	byFence := slices.Clone(group)
	slices.SortStableFunc(byFence, func(a, b T) int { return cmp.Compare(fence(b), fence(a)) })
	for _, r := range byFence {
		ok, err := links(r, *next)
		if err != nil {
			return 0, false, err
		}
		if ok {
			return fence(r), true, nil
		}
	}
	return top, false, nil
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
