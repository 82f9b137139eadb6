package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// A failed test prints the last logTail lines, oldest first.
func TestLineTailKeepsTheLastLines(t *testing.T) {
	var l lineTail
	for i := range logTail + 5 {
		fmt.Fprintf(&l, "line %d\n", i)
	}
	lines := strings.Split(strings.TrimSuffix(l.String(), "\n"), "\n")
	if len(lines) != logTail || lines[0] != "line 5" || lines[logTail-1] != fmt.Sprintf("line %d", logTail+4) {
		t.Fatalf("kept %d lines, first %q, last %q; want %d from line 5", len(lines), lines[0], lines[len(lines)-1], logTail)
	}
}
