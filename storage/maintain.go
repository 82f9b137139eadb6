package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Maintainer is drd's storage component: it probes every region's store for
// drkit_store_up and sweeps abandoned multipart uploads. It satisfies drd's
// lifecycle component interface (Name, Run, Ready).
type Maintainer struct {
	Regions       []*Region
	Metrics       *Metrics
	Log           *slog.Logger
	ProbeInterval time.Duration // default 30s
	SweepInterval time.Duration // default 1h
	SweepAfter    time.Duration // uploads older than this are aborted
	// Owns says which keys drkit wrote (config.KeyPrefixes): only their
	// uploads are swept.
	Owns func(key string) bool

	mu     sync.Mutex
	probed bool
}

// Name implements the lifecycle component interface.
func (m *Maintainer) Name() string { return "storage" }

// Ready reports ready once every region has been probed once (up or not: a
// region being down is an alert, not a reason to refuse serving metrics).
func (m *Maintainer) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.probed {
		return errors.New("stores not probed yet")
	}
	return nil
}

// Run probes and sweeps until ctx ends.
func (m *Maintainer) Run(ctx context.Context) error {
	probeEvery, sweepEvery := m.ProbeInterval, m.SweepInterval
	if probeEvery <= 0 {
		probeEvery = 30 * time.Second
	}
	if sweepEvery <= 0 {
		sweepEvery = time.Hour
	}
	m.probe(ctx)
	probeTick, sweepTick := time.NewTicker(probeEvery), time.NewTicker(sweepEvery)
	defer probeTick.Stop()
	defer sweepTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-probeTick.C:
			m.probe(ctx)
		case <-sweepTick.C:
			m.sweep(ctx)
		}
	}
}

func (m *Maintainer) probe(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range m.Regions {
		wg.Go(func() {
			err := Probe(ctx, r.Store)
			if ctx.Err() != nil {
				return
			}
			m.Metrics.SetUp(r.Name, err == nil)
			if err != nil {
				m.Log.Warn("store is down", "region", r.Name, "store", r.Store.String(), "err", err)
			}
		})
	}
	wg.Wait()
	m.mu.Lock()
	m.probed = true
	m.mu.Unlock()
}

func (m *Maintainer) sweep(ctx context.Context) {
	for _, r := range m.Regions {
		sw, ok := Unwrap(r.Store).(Sweeper)
		if !ok {
			continue
		}
		swept, err := sw.Sweep(ctx, time.Now().Add(-m.SweepAfter), false, m.Owns)
		for _, p := range swept {
			m.Log.Info("aborted an abandoned upload", "region", r.Name, "key", p.Key, "started", p.Started)
		}
		if err != nil && ctx.Err() == nil {
			m.Log.Warn("sweep failed", "region", r.Name, "err", fmt.Errorf("sweep: %w", err))
		}
	}
}
