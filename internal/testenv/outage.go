package testenv

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	p, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Outage is how long outage tests keep a region blocked: 12 s (a blocked
// region's queue fills within seconds under the tests' load, which each test
// asserts), or
// $DRKIT_OUTAGE (DRKIT_OUTAGE=2m for the two minutes the issues name).
func Outage(tb testing.TB) time.Duration {
	tb.Helper()
	if v := os.Getenv("DRKIT_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			tb.Fatalf("DRKIT_OUTAGE=%q: %v", v, err)
		}
		return d
	}
	return 12 * time.Second
}

// ExposureBound is what an outage test accepts as the healthy regions'
// exposure p99. The issues' target, 2 s, is a measurement: it is asserted when
// DRKIT_OUTAGE is set (the measured run, without -race). In make test, under
// -race on 2 cores, timing is not asserted tightly (the standards: no timed
// assertions there): a third of the outage still fails when the blocked
// region holds the others back, which makes their exposure the outage's
// length (each test blocks it over at least half of it in one stretch).
func ExposureBound(tb testing.TB) time.Duration {
	if os.Getenv("DRKIT_OUTAGE") != "" {
		return 2 * time.Second
	}
	return Outage(tb) / 3
}

// Exposer is a shipper's region target: the age of the oldest log it lacks.
type Exposer interface {
	Exposure(now time.Time) time.Duration
}

// Exposures samples the targets' exposure every 100 ms (printing those
// above 1 s as they happen under -v) until the returned stop is called.
type Exposures struct {
	samples        []time.Duration
	done, finished chan struct{}
}

// SampleExposure starts sampling targets.
func SampleExposure(targets ...Exposer) *Exposures {
	e := &Exposures{done: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(e.finished)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-e.done:
				return
			case now := <-tick.C:
				for i, tg := range targets {
					x := tg.Exposure(now)
					e.samples = append(e.samples, x)
					if x > time.Second && testing.Verbose() {
						fmt.Printf("%s exposure %s of target %d\n", now.Format("15:04:05.000"), x, i)
					}
				}
			}
		}
	}()
	return e
}

// Stop ends the sampling and returns the samples taken.
func (e *Exposures) Stop() []time.Duration {
	close(e.done)
	<-e.finished
	return e.samples
}

// P99 is the 99th percentile of samples (0 without any).
func P99(samples []time.Duration) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	return sorted[len(sorted)*99/100]
}
