package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Component is a long-running part of drd (a log shipper, the HTTP listener, a
// scheduler). Run blocks until ctx is done or the component fails; a clean stop
// after cancellation returns nil.
type Component interface {
	Name() string
	Run(ctx context.Context) error
}

// ReadyChecker is implemented by components that may not be ready to serve yet;
// Ready returns nil when they are, else why not.
type ReadyChecker interface {
	Ready() error
}

// Group runs components together.
type Group struct {
	log        *slog.Logger
	components []Component
}

// NewGroup returns an empty group that logs to log.
func NewGroup(log *slog.Logger) *Group {
	return &Group{log: log}
}

// Add registers c; call before Run.
func (g *Group) Add(c Component) {
	g.components = append(g.components, c)
}

// Run runs every component until ctx is done or one of them fails; it then cancels
// the others, waits for all, and returns the errors of those that failed.
func (g *Group) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range g.components {
		wg.Go(func() {
			g.log.Debug("component starting", "component", c.Name())
			err := c.Run(ctx)
			if err != nil && !(errors.Is(err, context.Canceled) && ctx.Err() != nil) {
				g.log.Error("component failed", "component", c.Name(), "err", err)
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", c.Name(), err))
				mu.Unlock()
				cancel()
				return
			}
			g.log.Debug("component stopped", "component", c.Name())
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Ready returns nil when every component that implements ReadyChecker is ready,
// else one error naming each that is not.
func (g *Group) Ready() error {
	var errs []error
	for _, c := range g.components {
		if rc, ok := c.(ReadyChecker); ok {
			if err := rc.Ready(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}
