package main

import (
	"context"
	"log/slog"
	"runtime"
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

// TestMemoryTrimReturnsABurst: after a burst is garbage collected, the trim
// gives the free heap back to the OS, and logs that it did.
func TestMemoryTrimReturnsABurst(t *testing.T) {
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	runtime.GC()
	if f := freeHeap(); f < 32<<20 {
		t.Fatalf("setup: %d MiB free after dropping a 64 MiB burst, want at least 32", f>>20)
	}
	var logged strings.Builder
	m := &memoryTrim{every: 10 * time.Millisecond, threshold: 16 << 20, log: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if f := freeHeap(); f >= 16<<20 || !strings.Contains(logged.String(), "returned free heap memory") {
		t.Fatalf("after the trim: %d MiB still free (log: %q)", f>>20, logged.String())
	}
}
