package storage

import (
	"context"
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

func TestLatestFence(t *testing.T) {
	type ref struct{ pos, fence uint64 }
	refs := []ref{{1, 1}, {2, 1}, {2, 3}, {2, 2}, {3, 0}, {4, 2}, {4, 2}}
	kept, late := LatestFence(refs, func(a, b ref) bool { return a.pos == b.pos }, func(r ref) uint64 { return r.fence })
	if fmt.Sprint(kept) != "[{1 1} {2 3} {3 0} {4 2} {4 2}]" || fmt.Sprint(late) != "[{2 1} {2 2}]" {
		t.Fatalf("kept %v, late %v", kept, late)
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
