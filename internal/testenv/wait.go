package testenv

import (
	"testing"
	"time"
)

// WaitFor polls ok every 50 ms and fails the test, naming what it waited
// for, when ok has not held within the given time.
func WaitFor(tb testing.TB, within time.Duration, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting until %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
