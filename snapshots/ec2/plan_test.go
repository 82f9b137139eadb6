package ec2

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func source(id string, ageH int) Resource {
	return Resource{Kind: KindImage, ID: id, State: StateAvailable, Created: t0.Add(-time.Duration(ageH) * time.Hour)}
}

func copyOf(id, src string, ageH int, st State) Resource {
	return Resource{Kind: KindImage, ID: id, State: st, Created: t0.Add(-time.Minute),
		Tags: map[string]string{TagJob: "web", TagSourceID: src, TagSourceTime: t0.Add(-time.Duration(ageH) * time.Hour).Format(time.RFC3339)}}
}

func ids(rs []Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	slices.Sort(out)
	return out
}

func deleted(ds []Deletion) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	slices.Sort(out)
	return out
}

func TestPlanRetention(t *testing.T) {
	p := Planner{Keep: 2, Timeout: time.Hour, Now: t0}
	cases := []struct {
		name             string
		p                Planner
		sources, copies  []Resource
		copy, keep, dels []string
	}{
		{"new source: copy it, keep the old copies until it is good", p,
			[]Resource{source("a", 3), source("b", 2), source("c", 1)},
			[]Resource{copyOf("ca", "a", 3, StateAvailable), copyOf("cb", "b", 2, StateAvailable)},
			[]string{"c"}, []string{"ca", "cb"}, nil},
		{"new copy good: the oldest goes", p,
			[]Resource{source("a", 3), source("b", 2), source("c", 1)},
			[]Resource{copyOf("ca", "a", 3, StateAvailable), copyOf("cb", "b", 2, StateAvailable), copyOf("cc", "c", 1, StateAvailable)},
			nil, []string{"cb", "cc"}, []string{"ca"}},
		{"pending copy: not copied again, does not count", p,
			[]Resource{source("a", 3), source("b", 2), source("c", 1)},
			[]Resource{copyOf("ca", "a", 3, StateAvailable), copyOf("cb", "b", 2, StateAvailable), copyOf("cc", "c", 1, StatePending)},
			nil, []string{"ca", "cb", "cc"}, nil},
		{"failed newest copy: deleted and copied again, the good ones stay", Planner{Keep: 1, Timeout: time.Hour, Now: t0},
			[]Resource{source("a", 3), source("b", 1)},
			[]Resource{copyOf("ca", "a", 3, StateAvailable), copyOf("cb", "b", 1, StateFailed)},
			[]string{"b"}, []string{"ca"}, []string{"cb"}},
		{"stale pending copy is deleted", p,
			[]Resource{source("a", 3)},
			[]Resource{{Kind: KindImage, ID: "ca", State: StatePending, Created: t0.Add(-2 * time.Hour), Tags: map[string]string{TagJob: "web", TagSourceID: "a"}}},
			[]string{"a"}, nil, []string{"ca"}},
		{"source gone: its copy is still the newest good one", Planner{Keep: 1, Timeout: time.Hour, Now: t0},
			nil, []Resource{copyOf("ca", "a", 3, StateAvailable), copyOf("cb", "b", 900, StateAvailable)},
			nil, []string{"ca"}, []string{"cb"}},
		{"keep_within alone", Planner{KeepWithin: 48 * time.Hour, Timeout: time.Hour, Now: t0},
			[]Resource{source("a", 100), source("b", 30), source("c", 1)},
			[]Resource{copyOf("ca", "a", 100, StateAvailable)},
			[]string{"b", "c"}, []string{"ca"}, nil},
		{"no retention keeps everything", Planner{Timeout: time.Hour, Now: t0},
			[]Resource{source("a", 9000)},
			[]Resource{copyOf("cz", "z", 9999, StateAvailable)},
			[]string{"a"}, []string{"cz"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pl := tc.p.Plan("r", tc.sources, tc.copies)
			if got := ids(pl.Copy); !slices.Equal(got, tc.copy) {
				t.Errorf("copy %v, want %v", got, tc.copy)
			}
			if got := ids(pl.Keep); !slices.Equal(got, tc.keep) {
				t.Errorf("keep %v, want %v", got, tc.keep)
			}
			if got := deleted(pl.Delete); !slices.Equal(got, tc.dels) {
				t.Errorf("delete %v, want %v", got, tc.dels)
			}
		})
	}
}
