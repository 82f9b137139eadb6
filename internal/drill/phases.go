package drill

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// phaseOrder is the order phases are reported in, whatever order the engine
// entered them (PostgreSQL's replay runs inside its start).
var phaseOrder = []string{"choose backup", "sandbox", "fetch base", "verify base", "fetch log", "replay", "build indexes", "start", "check", "deep check"}

// phases times a drill's phases: enter closes the current one and starts the
// next; entering a phase again adds to it. The store's busy time during
// "replay" is what the replay waited on the store: moved to "fetch log".
type phases struct {
	mu      sync.Mutex
	meter   *Meter
	took    map[string]time.Duration
	fetched map[string]time.Duration // store busy time within each phase
	cur     string
	since   time.Time
	busy0   time.Duration
}

func newPhases(m *Meter) *phases {
	return &phases{meter: m, took: map[string]time.Duration{}, fetched: map[string]time.Duration{}}
}

// enter moves on to phase name ("" ends the current one).
func (p *phases) enter(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now, busy := time.Now(), p.meter.Busy()
	if p.cur != "" {
		p.took[p.cur] += now.Sub(p.since)
		p.fetched[p.cur] += busy - p.busy0
	}
	p.cur, p.since, p.busy0 = name, now, busy
	if name != "" {
		p.took[name] += 0 // listed even when it takes no time
	}
}

// current is the phase under way.
func (p *phases) current() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// move takes d (at most what from took) from phase from into phase to.
func (p *phases) move(from, to string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.took[from]; !ok || d <= 0 {
		return
	}
	d = min(d, p.took[from])
	p.took[from] -= d
	p.took[to] += d
}

// list returns the phases in phaseOrder, unknown names last by name, after
// moving the store's busy time during the replay into "fetch log".
func (p *phases) list() []Phase {
	p.enter("")
	p.move("replay", "fetch log", p.fetched["replay"])
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.took["replay"]; ok {
		p.took["fetch log"] += 0 // reported, even when the log was in cache
	}
	names := make([]string, 0, len(p.took))
	for n := range p.took {
		names = append(names, n)
	}
	rank := func(n string) int {
		if i := slices.Index(phaseOrder, n); i >= 0 {
			return i
		}
		return len(phaseOrder)
	}
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	out := make([]Phase, 0, len(names))
	for _, n := range names {
		out = append(out, Phase{Name: n, Seconds: p.took[n].Seconds()})
	}
	return out
}
