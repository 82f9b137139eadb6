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
// the new holder wrote that position, and the new holder's chunk, the higher
// fence, is then the one the chain goes on from. Not always: with two
// holders paused in a row, the first one's late chunk can land before the
// third holder lists, which builds on it, and the middle one's lands after.
// Fence order alone then keeps the middle one's, which the third holder's
// chunks do not continue: a gap for good, and prune deleting the only copy
// of what the chain lacks.
//
// So positions are settled from the newest back. Where the kept chain after
// a position holds a chunk of a holder newer than every ref at it (followed
// while it links, up to maxFollow chunks), that holder built on one of them:
// the highest-fenced ref that links to the next kept ref is kept. Elsewhere
// the highest fence is kept, as before (a next chunk of an old holder is no
// evidence). A lone ref is kept whatever its fence, and refs of equal fence
// are kept together (the chain's own checks judge them).
//
// A ref not kept is late, for prune to delete at once, only if covers says
// the kept ref at its position ends at or past its end, or the next kept ref
// does where the kept one links to it: the chain holds what it held.
// Otherwise it is held: out of the chain for now, as the next holder may
// still build on it, and for prune to delete only by age, with its rival.
// late and held are in refs' order. links and covers may read the store (a
// chunk's header); their error ends the walk.
func LinkedFence[T any](refs []T, same func(a, b T) bool, fence func(T) uint64, links, covers func(a, b T) (bool, error)) (kept, late, held []T, err error) {
	var groups [][]T
	for i := 0; i < len(refs); {
		j := i + 1
		for j < len(refs) && same(refs[i], refs[j]) {
			j++
		}
		groups = append(groups, refs[i:j])
		i = j
	}
	w := fenceWalk[T]{fence: fence, links: links, covers: covers, firsts: make([]T, len(groups))}
	keptG, lateG, heldG := make([][]T, len(groups)), make([][]T, len(groups)), make([][]T, len(groups))
	for g := len(groups) - 1; g >= 0; g-- {
		if keptG[g], lateG[g], heldG[g], err = w.settle(groups, g); err != nil {
			return nil, nil, nil, err
		}
	}
	for g := range groups {
		kept, late, held = append(kept, keptG[g]...), append(late, lateG[g]...), append(held, heldG[g]...)
	}
	return kept, late, held, nil
}

// maxFollow bounds how far LinkedFence follows the kept chain after a
// position for a newer holder's chunk (MariaDB reads a header per step).
const maxFollow = 64

// fenceWalk is LinkedFence's state: firsts[g] is the ref the chain goes
// through at each position already settled (those after the current one).
type fenceWalk[T any] struct {
	fence         func(T) uint64
	links, covers func(a, b T) (bool, error)
	firsts        []T
}

// settle splits position g's refs into kept, late and held.
func (w *fenceWalk[T]) settle(groups [][]T, g int) (kept, late, held []T, err error) {
	group := groups[g]
	if len(group) == 1 {
		w.firsts[g] = group[0]
		return group, nil, nil, nil
	}
	top := w.fence(group[0])
	for _, r := range group[1:] {
		top = max(top, w.fence(r))
	}
	hasNext := g+1 < len(groups)
	var keep T
	linked := false
	if hasNext {
		newer, err := w.newerAfter(g+1, top)
		if err != nil {
			return nil, nil, nil, err
		}
		if newer {
			if keep, linked, err = w.linkedChoice(group, w.firsts[g+1]); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	if !linked {
		for _, r := range group {
			if w.fence(r) == top {
				keep = r
				break
			}
		}
	}
	choice := w.fence(keep)
	if hasNext && !linked {
		if linked, err = w.links(keep, w.firsts[g+1]); err != nil {
			return nil, nil, nil, err
		}
	}
	w.firsts[g] = keep
	for _, r := range group {
		if w.fence(r) == choice {
			kept = append(kept, r)
			continue
		}
		covered, err := w.covers(keep, r)
		if err == nil && !covered && linked {
			covered, err = w.covers(w.firsts[g+1], r)
		}
		switch {
		case err != nil:
			return nil, nil, nil, err
		case covered:
			late = append(late, r)
		default:
			held = append(held, r)
		}
	}
	return kept, late, held, nil
}

// newerAfter reports whether the kept chain from position g on, followed
// while it links, holds a ref fenced above top.
func (w *fenceWalk[T]) newerAfter(g int, top uint64) (bool, error) {
	for i := g; i < len(w.firsts) && i < g+maxFollow; i++ {
		if w.fence(w.firsts[i]) > top {
			return true, nil
		}
		if i+1 == len(w.firsts) {
			return false, nil
		}
		if ok, err := w.links(w.firsts[i], w.firsts[i+1]); err != nil || !ok {
			return false, err
		}
	}
	return false, nil
}

// linkedChoice returns the highest-fenced of group's refs that links to
// next; ok is false when none does.
func (w *fenceWalk[T]) linkedChoice(group []T, next T) (ref T, ok bool, err error) {
	byFence := slices.Clone(group)
	slices.SortStableFunc(byFence, func(a, b T) int { return cmp.Compare(w.fence(b), w.fence(a)) })
	for _, r := range byFence {
		if ok, err := w.links(r, next); err != nil || ok {
			return r, ok, err
		}
	}
	return ref, false, nil
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
