package drill

import (
	"testing"
	"time"
)

// The store's busy time during the replay is reported as "fetch log" and
// taken out of "replay"; phases come in the report's order whatever order
// they were entered in, and one entered twice is summed.
func TestPhasesSplitTheReplay(t *testing.T) {
	m := &Meter{}
	p := newPhases(m)
	p.enter("start") // PostgreSQL: the drill's start, within which replay runs
	p.enter("replay")
	time.Sleep(10 * time.Millisecond)
	m.begin()
	m.begin() // two concurrent reads count once
	time.Sleep(20 * time.Millisecond)
	m.end()
	m.end()
	p.enter("start")
	time.Sleep(5 * time.Millisecond)
	p.enter("fetch base")
	got := p.list()
	var names []string
	byName := map[string]float64{}
	for _, ph := range got {
		names = append(names, ph.Name)
		byName[ph.Name] = ph.Seconds
	}
	want := []string{"fetch base", "fetch log", "replay", "start"}
	if len(names) != len(want) {
		t.Fatalf("phases %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("phases %v, want %v", names, want)
		}
	}
	if byName["fetch log"] < 0.020 {
		t.Errorf("fetch log %.3fs, want at least the 20 ms of reads", byName["fetch log"])
	}
	if byName["replay"] < 0.010 {
		t.Errorf("replay %.3fs, want at least its 10 ms without reads", byName["replay"])
	}
	if byName["start"] < 0.005 {
		t.Errorf("start %.3fs, want the two parts summed (>= 5 ms)", byName["start"])
	}
}

func TestPhasesMoveNoMoreThanTheSourceTook(t *testing.T) {
	p := newPhases(&Meter{})
	p.enter("replay")
	time.Sleep(2 * time.Millisecond)
	p.enter("")
	took := p.took["replay"]
	p.move("replay", "fetch log", time.Hour)
	if p.took["replay"] != 0 || p.took["fetch log"] != took {
		t.Fatalf("after moving an hour: replay %v, fetch log %v; want 0 and %v", p.took["replay"], p.took["fetch log"], took)
	}
	p.move("absent", "fetch log", time.Second)
	if p.took["fetch log"] != took {
		t.Fatalf("a move from a phase never entered changed fetch log to %v", p.took["fetch log"])
	}
}
