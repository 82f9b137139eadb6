package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestFenceSuffixAndCut(t *testing.T) {
	ctx := context.Background()
	if s := FenceSuffix(ctx); s != "" {
		t.Fatalf("no lease: suffix %q", s)
	}
	if s := FenceSuffix(WithFence(ctx, 7)); s != "-f7" {
		t.Fatalf("generation 7: suffix %q", s)
	}
	for base, want := range map[string]struct {
		rest  string
		fence uint64
		ok    bool
	}{
		"12-34":     {"12-34", 0, true},
		"12-34-f7":  {"12-34", 7, true},
		"12-34-f0":  {"", 0, false},
		"12-34-f":   {"", 0, false},
		"12-34-f+7": {"", 0, false},
		"12-34-fx":  {"", 0, false},
	} {
		rest, fence, ok := CutFence(base)
		if rest != want.rest || fence != want.fence || ok != want.ok {
			t.Errorf("CutFence(%q) = %q, %d, %v; want %+v", base, rest, fence, ok, want)
		}
	}
}

func TestLinkedFenceKeepsTheHighestFenceWhereAllLink(t *testing.T) {
	type ref struct{ pos, fence uint64 }
	refs := []ref{{1, 1}, {2, 1}, {2, 3}, {2, 2}, {3, 0}, {4, 2}, {4, 2}, {5, 1}, {5, 2}}
	yes := func(ref, ref) (bool, error) { return true, nil }
	kept, late, held, err := LinkedFence(refs, func(a, b ref) bool { return a.pos == b.pos }, func(r ref) uint64 { return r.fence }, yes, yes)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(kept) != "[{1 1} {2 3} {3 0} {4 2} {4 2} {5 2}]" || fmt.Sprint(late) != "[{2 1} {2 2} {5 1}]" || len(held) != 0 {
		t.Fatalf("kept %v, late %v, held %v", kept, late, held)
	}
}

// span is a chunk from start to end written under fence.
type span struct{ start, end, fence uint64 }

func linkSpans(refs []span) (kept, late, held []span, err error) {
	return LinkedFence(refs, func(a, b span) bool { return a.start == b.start }, func(r span) uint64 { return r.fence },
		func(prev, next span) (bool, error) { return prev.end == next.start, nil },
		func(a, b span) (bool, error) { return a.end >= b.end, nil })
}

// Holder 1 paused uploading (20, 25]; holder 2 took over from 20 and paused
// uploading (20, 22]; holder 1's chunk landed, holder 3 listed it and went
// on from 25; holder 2's landed last. Fence order alone keeps (20, 22], and
// (22, 25] is lost from the chain; the chain is holder 3's, through holder
// 1's chunk.
func TestLinkedFenceFollowsTheChainTheNewestHolderBuiltOn(t *testing.T) {
	kept, late, held, err := linkSpans([]span{{10, 20, 1}, {20, 25, 1}, {20, 22, 2}, {25, 40, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(kept) != "[{10 20 1} {20 25 1} {25 40 3}]" || fmt.Sprint(late) != "[{20 22 2}]" || len(held) != 0 {
		t.Fatalf("kept %v, late %v, held %v", kept, late, held)
	}
}

// Holder 1 finished two late uploads, (20, 25] and (25, 26], after holder 2
// wrote (20, 27] and (27, 40]: the next chunk after 20 is holder 1's, no
// evidence, so holder 2's (20, 27] stays and holder 1's (20, 25], which it
// covers, is late. Following the link there deleted holder 2's chunk, the
// only copy of (26, 27].
func TestLinkedFenceIgnoresAnOldHoldersNextChunk(t *testing.T) {
	kept, late, held, err := linkSpans([]span{{20, 25, 1}, {20, 27, 2}, {25, 26, 1}, {27, 40, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(kept) != "[{20 27 2} {25 26 1} {27 40 2}]" || fmt.Sprint(late) != "[{20 25 1}]" || len(held) != 0 {
		t.Fatalf("kept %v, late %v, held %v", kept, late, held)
	}
}

// Holder 1 also wrote (25, 30] before it stopped, and holder 3 went on from
// there: the chain after 20 reaches holder 3's chunk through holder 1's, so
// holder 1's (20, 25] is the one kept.
func TestLinkedFenceFollowsTheChainToANewerHolder(t *testing.T) {
	kept, late, held, err := linkSpans([]span{{10, 20, 1}, {20, 25, 1}, {20, 22, 2}, {25, 30, 1}, {30, 40, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(kept) != "[{10 20 1} {20 25 1} {25 30 1} {30 40 3}]" || fmt.Sprint(late) != "[{20 22 2}]" || len(held) != 0 {
		t.Fatalf("kept %v, late %v, held %v", kept, late, held)
	}
}

func TestLinkedFenceHoldsWhatNoSuccessorSettles(t *testing.T) {
	// Holder 3 has not written yet: the highest fence is kept for now, and
	// the other, which holds more than it, is held, not late (holder 3 may
	// go on from it).
	kept, late, held, err := linkSpans([]span{{10, 20, 1}, {20, 25, 1}, {20, 22, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(kept) != "[{10 20 1} {20 22 2}]" || len(late) != 0 || fmt.Sprint(held) != "[{20 25 1}]" {
		t.Fatalf("newest: kept %v, late %v, held %v", kept, late, held)
	}
	// Neither links to what follows (a gap): the same.
	kept, late, held, err = linkSpans([]span{{10, 20, 1}, {20, 25, 1}, {20, 22, 2}, {30, 40, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(kept) != "[{10 20 1} {20 22 2} {30 40 3}]" || len(late) != 0 || fmt.Sprint(held) != "[{20 25 1}]" {
		t.Fatalf("gap: kept %v, late %v, held %v", kept, late, held)
	}
}

func TestLinkedFenceReturnsTheLinkError(t *testing.T) {
	boom := errors.New("header unreadable")
	fail := func(span, span) (bool, error) { return false, boom }
	_, _, _, err := LinkedFence([]span{{20, 25, 1}, {20, 22, 2}, {25, 40, 3}}, func(a, b span) bool { return a.start == b.start },
		func(r span) uint64 { return r.fence }, fail, fail)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the link's error", err)
	}
}

func FuzzCutFence(f *testing.F) {
	for _, s := range []string{"12-34", "12-34-f7", "-f", "-f-f1", "1-f18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		rest, fence, ok := CutFence(base)
		if !ok {
			return
		}
		if fence == 0 && rest != base {
			t.Fatalf("%q: no fence, yet the rest %q differs", base, rest)
		}
		if fence > 0 {
			r2, f2, ok2 := CutFence(rest + fmt.Sprintf("-f%d", fence))
			if !ok2 || r2 != rest || f2 != fence {
				t.Fatalf("%q: %q and %d do not write back", base, rest, fence)
			}
		}
	})
}
