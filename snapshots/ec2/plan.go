package ec2

import (
	"fmt"
	"slices"
	"time"
)

// Plan is what a run does in one destination region.
type Plan struct {
	Region string `json:"region"`
	// Copy lists the sources to copy.
	Copy []Resource `json:"copy"`
	// Tag lists copies found by their description only, to tag.
	Tag []Resource `json:"tag"`
	// Keep lists the copies kept (available or still pending).
	Keep []Resource `json:"keep"`
	// Delete lists the copies to delete, each with why.
	Delete []Deletion `json:"delete"`
}

// Deletion is a copy to delete and the reason.
type Deletion struct {
	Resource
	Reason string `json:"reason"`
}

// Planner holds the retention rules and the clock.
type Planner struct {
	Keep       int
	KeepWithin time.Duration
	// Timeout is how long a copy may stay pending before it is deleted.
	Timeout time.Duration
	Now     time.Time
}

// Plan decides from the sources and the copies already in region. Failed copies and copies pending past
// the timeout are deleted. Retention is applied twice: to the available
// copies together with the sources not yet copied (which of those to copy),
// and to the available copies alone; a copy kept by either stays, so an old
// copy goes only once its replacement is available, and the newest
// available copy always stays.
//
// Retention counts within a series (Resource.Series): the snapshots of each
// volume are ranked apart.
func (p Planner) Plan(region string, sources, copies []Resource) Plan {
	pl := Plan{Region: region, Copy: []Resource{}, Tag: []Resource{}, Keep: []Resource{}, Delete: []Deletion{}}
	copies = slices.Clone(copies)
	for i, c := range copies {
		// A copy not yet tagged belongs to its source's series (a snapshot
		// copy's own volume id is a placeholder).
		if src, ok := find(sources, c.SourceID()); ok && c.Tags[TagSeries] == "" {
			copies[i].Volume = src.Series()
		}
	}
	for _, series := range seriesOf(sources, copies) {
		p.planSeries(&pl, filterSeries(sources, series), filterSeries(copies, series))
	}
	return pl
}

func seriesOf(lists ...[]Resource) []string {
	var out []string
	for _, l := range lists {
		for _, r := range l {
			if !slices.Contains(out, r.Series()) {
				out = append(out, r.Series())
			}
		}
	}
	slices.Sort(out)
	return out
}

// filterSeries returns series' members of rs, newest first.
func filterSeries(rs []Resource, series string) []Resource {
	var out []Resource
	for _, r := range rs {
		if r.Series() == series {
			out = append(out, r)
		}
	}
	sortNewest(out, Resource.SourceTime)
	return out
}

func (p Planner) planSeries(pl *Plan, sources, copies []Resource) {
	live := map[string]bool{} // source ids with a pending or available copy
	var good []Resource
	for _, c := range copies {
		switch {
		case c.State == StateFailed:
			pl.Delete = append(pl.Delete, Deletion{c, "the copy failed"})
			continue
		case c.State == StatePending && p.Now.Sub(c.Created) > p.Timeout:
			pl.Delete = append(pl.Delete, Deletion{c, fmt.Sprintf("pending since %s, longer than the copy timeout %s", c.Created.Format(time.RFC3339), p.Timeout)})
			continue
		case c.State == StatePending:
			pl.Keep = append(pl.Keep, c)
		default:
			good = append(good, c)
		}
		live[c.SourceID()] = true
		if c.Tags[TagJob] == "" {
			pl.Tag = append(pl.Tag, c)
		}
	}
	var missing []Resource
	for _, s := range sources {
		if s.State == StateAvailable && !live[s.ID] {
			missing = append(missing, s)
		}
	}
	keptUnion := p.retain(mergeNewest(good, missing))
	keptGood := p.retain(good)
	for _, s := range missing {
		if keptUnion[s.ID] {
			pl.Copy = append(pl.Copy, s)
		}
	}
	for _, c := range good {
		if keptUnion[c.ID] || keptGood[c.ID] {
			pl.Keep = append(pl.Keep, c)
		} else {
			pl.Delete = append(pl.Delete, Deletion{c, p.expiry()})
		}
	}
}

// retain returns the ids retention keeps among rs (newest first).
func (p Planner) retain(rs []Resource) map[string]bool {
	kept := map[string]bool{}
	for i, r := range rs {
		all := p.Keep == 0 && p.KeepWithin == 0
		if all || i == 0 || i < p.Keep || (p.KeepWithin > 0 && p.Now.Sub(r.SourceTime()) <= p.KeepWithin) {
			kept[r.ID] = true
		}
	}
	return kept
}

func (p Planner) expiry() string {
	switch {
	case p.Keep > 0 && p.KeepWithin > 0:
		return fmt.Sprintf("expired: not among the newest %d and older than %s", p.Keep, p.KeepWithin)
	case p.Keep > 0:
		return fmt.Sprintf("expired: not among the newest %d", p.Keep)
	}
	return fmt.Sprintf("expired: older than %s", p.KeepWithin)
}

// mergeNewest merges two newest-first lists by source time.
func mergeNewest(a, b []Resource) []Resource {
	out := append(append([]Resource{}, a...), b...)
	sortNewest(out, Resource.SourceTime)
	return out
}
