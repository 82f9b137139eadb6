package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memoryTrim returns heap memory that is not live to the OS once a minute
// when there is much of it. drd's memory comes in bursts: at start the
// shippers send the open WAL segments and binlog again, a backup or a copy
// moves large parts, and then drd idles for hours with a small live heap.
// The runtime gives memory back only slowly and only after a GC, which an
// idle drd (few allocations) may not run for many minutes: the burst's
// garbage is then neither collected nor free, so the trim counts everything
// the heap holds beyond the live bytes of the last GC, and collects and
// returns it (one small GC a minute at most, only after a burst).
type memoryTrim struct {
	every     time.Duration
	threshold uint64 // free heap bytes that trigger a release
	log       *slog.Logger
}

// Name implements lifecycle.Component.
func (m *memoryTrim) Name() string { return "memory-trim" }

// Run implements lifecycle.Component.
func (m *memoryTrim) Run(ctx context.Context) error {
	sample := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"}, // live and not yet collected
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/gc/heap/live:bytes"}, // live at the last GC
	}
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		metrics.Read(sample)
		var held uint64
		for _, s := range sample[:3] {
			if s.Value.Kind() != metrics.KindUint64 {
				return nil // the runtime does not report it: nothing to go by
			}
			held += s.Value.Uint64()
		}
		live := sample[3].Value.Uint64()
		if held > live && held-live >= m.threshold {
			debug.FreeOSMemory()
			m.log.Debug("returned heap memory that is not live to the OS", "bytes", held-live)
		}
	}
}
