package main

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

func freeHeap() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// sink keeps the burst reachable until the test drops it.
var sink [][]byte

// TestMemoryTrimReturnsABurst: after a burst, whether or not a GC has
// collected it yet, the trim gives the heap back to the OS, and logs that it did.
func TestMemoryTrimReturnsABurst(t *testing.T) {
	t.Run("collected", func(t *testing.T) {
		burst()
		runtime.GC()
		if f := freeHeap(); f < 32<<20 {
			t.Fatalf("setup: %d MiB free after dropping a 64 MiB burst, want at least 32", f>>20)
		}
		trim(t)
	})
	t.Run("not collected yet", func(t *testing.T) {
		// An idle drd may not run a GC for minutes after a burst: its garbage
		// is neither live nor free.
		runtime.GC()
		debug.SetGCPercent(-1)
		defer debug.SetGCPercent(100)
		burst()
		if f := freeHeap(); f >= 16<<20 {
			t.Fatalf("setup: %d MiB free before any GC, want the burst still held", f>>20)
		}
		trim(t)
	})
}

// burst allocates 64 MiB and drops it.
func burst() {
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
}

func heapHeld() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// trim runs the trim briefly and checks the heap holds under 16 MiB after.
func trim(t *testing.T) {
	t.Helper()
	var logged strings.Builder
	m := &memoryTrim{every: 10 * time.Millisecond, threshold: 16 << 20, log: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if h := heapHeld(); h >= 16<<20 || !strings.Contains(logged.String(), "returned heap memory") {
		t.Fatalf("after the trim the heap holds %d MiB (log: %q)", h>>20, logged.String())
	}
}
