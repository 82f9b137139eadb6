package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memoryTrim returns heap memory the runtime holds free to the OS once a
// minute when there is much of it. drd's memory comes in bursts: at start
// the shippers send the open WAL segments and binlog again, a backup or a
// copy moves large parts, and then drd idles for hours with a small live
// heap. The runtime gives free memory back only slowly and only after a GC,
// which an idle drd (few allocations) seldom runs, so without this a sidecar
// keeps its peak RSS for minutes after every burst.
type memoryTrim struct {
	every     time.Duration
	threshold uint64 // free heap bytes that trigger a release
	log       *slog.Logger
}

// Name implements lifecycle.Component.
func (m *memoryTrim) Name() string { return "memory-trim" }

// Run implements lifecycle.Component.
func (m *memoryTrim) Run(ctx context.Context) error {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return nil // the runtime does not report it: nothing to go by
		}
		if free := sample[0].Value.Uint64(); free >= m.threshold {
			debug.FreeOSMemory()
			m.log.Debug("returned free heap memory to the OS", "free_bytes", free)
		}
	}
}
