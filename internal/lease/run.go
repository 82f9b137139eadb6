package lease

import (
	"context"
	"time"
)

// Run keeps the lease: it tries every TTL/3 (TTL/6 while another holds it,
// to take over soon after it expires) and runs work while it holds the
// lease, with a context cancelled as soon as the hold is no longer valid
// (not renewed in time, or taken) or ctx ends; it waits for work to return
// before it tries to take the lease again. On return it releases the
// lease. Errors of the store are logged, not fatal.
func (l *Lease) Run(ctx context.Context, work func(ctx context.Context, generation uint64)) {
	var (
		cancel context.CancelFunc
		done   chan struct{}
	)
	stop := func() {
		if cancel != nil {
			cancel()
			<-done
			cancel = nil
		}
	}
	defer func() {
		stop()
		rctx, c := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer c()
		if err := l.Release(rctx); err != nil && l.Log != nil {
			l.Log.Warn("could not release the lease; another drd takes it after its TTL", "lease", l.Key, "err", err)
		}
	}()
	for {
		_, _, err := l.Try(ctx)
		if err != nil && l.Log != nil && ctx.Err() == nil {
			l.Log.Warn("lease attempt failed", "lease", l.Key, "err", err)
		}
		held, gen := l.Held()
		if cancel != nil && !held {
			stop()
		}
		if cancel != nil {
			select {
			case <-done:
				// The work ended on its own or by watch (the hold's validity
				// ran out before a late renewal went through): stop() clears
				// it, and a valid hold starts it again below. Without this a
				// holder renewed its lease forever with nothing running.
				stop()
			default:
			}
		}
		if cancel == nil && held {
			var wctx context.Context
			wctx, cancel = context.WithCancel(ctx)
			done = make(chan struct{})
			go func() {
				defer close(done)
				work(wctx, gen)
			}()
			go l.watch(wctx, cancel)
		}
		wait := l.TTL / 3
		if !held {
			wait = l.TTL / 6
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// watch cancels the work the moment the hold's validity ends, without
// waiting for the next attempt.
func (l *Lease) watch(ctx context.Context, cancel context.CancelFunc) {
	for {
		l.mu.Lock()
		until := l.validUntil
		l.mu.Unlock()
		d := until.Sub(l.now())
		if d <= 0 {
			if held, _ := l.Held(); !held {
				cancel()
				return
			}
			d = l.TTL / 10
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}
