package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fake struct {
	name    string
	fail    error
	ready   error
	stopped chan struct{}
}

func (f *fake) Name() string { return f.name }
func (f *fake) Ready() error { return f.ready }
func (f *fake) Run(ctx context.Context) error {
	defer close(f.stopped)
	if f.fail != nil {
		return f.fail
	}
	<-ctx.Done()
	return nil
}

func newFake(name string) *fake { return &fake{name: name, stopped: make(chan struct{})} }

func TestGroupFailureStopsOthers(t *testing.T) {
	g := NewGroup(quiet)
	long, bad := newFake("long"), newFake("bad")
	bad.fail = errors.New("boom")
	g.Add(long)
	g.Add(bad)
	err := g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "bad: boom") {
		t.Fatalf("Run = %v, want the failing component named", err)
	}
	select {
	case <-long.stopped:
	default:
		t.Fatal("the healthy component was not stopped")
	}
}

func TestGroupCleanStop(t *testing.T) {
	g := NewGroup(quiet)
	g.Add(newFake("a"))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	if err := g.Run(ctx); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
}

func TestGroupReadyNamesUnreadyComponents(t *testing.T) {
	g := NewGroup(quiet)
	a, b := newFake("a"), newFake("b")
	b.ready = errors.New("catching up")
	g.Add(a)
	g.Add(b)
	if err := g.Ready(); err == nil || err.Error() != "b: catching up" {
		t.Fatalf("Ready = %v", err)
	}
	b.ready = nil
	if err := g.Ready(); err != nil {
		t.Fatalf("Ready = %v, want nil", err)
	}
}

func TestSignalContextSecondSignalForcesExit(t *testing.T) {
	exited := make(chan int, 1)
	ctx, stop := SignalContext(context.Background(), quiet, func(code int) { exited <- code })
	defer stop()
	self := os.Getpid()
	if err := syscall.Kill(self, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("first SIGTERM did not cancel the context")
	}
	if err := syscall.Kill(self, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 1 {
			t.Fatalf("forced exit code %d, want 1", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second signal did not force the exit")
	}
}
