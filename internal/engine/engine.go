package engine

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/drkit/drkit/internal/config"
)

// Engine is a registered database engine. What it can do is the set of
// capability interfaces (capability.go) it implements.
type Engine interface {
	// Name is the engine's name in the config (clusters[].engine).
	Name() string
}

var (
	mu      sync.RWMutex
	engines = map[string]Engine{}
)

// Configured is an engine with rules for its clusters in the config (DSN
// form, defaults, which keys apply). An engine without it is accepted in the
// config with no engine-specific checks.
type Configured interface {
	ConfigRules() config.EngineRules
}

// Register makes e available under e.Name(), and its config rules to the
// config. It panics if the name is taken, as a second driver with one name
// is a programming error.
func Register(e Engine) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := engines[e.Name()]; dup {
		panic("engine: Register called twice for " + e.Name())
	}
	engines[e.Name()] = e
	var rules config.EngineRules
	if c, ok := e.(Configured); ok {
		rules = c.ConfigRules()
	}
	config.RegisterEngine(e.Name(), rules)
}

// Names returns the registered engines, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(engines))
	for n := range engines {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the engine registered as name.
func Lookup(name string) (Engine, error) {
	mu.RLock()
	e, ok := engines[name]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown engine %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return e, nil
}

// UnsupportedError is the answer for a capability an engine lacks.
type UnsupportedError struct {
	Engine, Capability string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("engine %s cannot %s yet", e.Engine, e.Capability)
}

// As returns e's capability T, or an *UnsupportedError naming what (a verb
// phrase: "verify", "take base backups").
func As[T any](e Engine, what string) (T, error) {
	c, ok := e.(T)
	if !ok {
		var zero T
		return zero, &UnsupportedError{Engine: e.Name(), Capability: what}
	}
	return c, nil
}

// Capable returns the capability T of the engine called name, or an error
// naming the engine and what it cannot do.
func Capable[T any](name, what string) (T, error) {
	e, err := Lookup(name)
	if err != nil {
		var zero T
		return zero, err
	}
	return As[T](e, what)
}

// UsageError marks a request an engine refuses as badly formed (a flag it
// does not take, a position it cannot parse): drctl exits 2 for it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usage wraps err as a UsageError.
func Usage(err error) error { return &UsageError{Err: err} }

// FailedError marks a failure whose exit code is 1 whatever it wraps (a
// restore that wrote its target already is not "not found").
type FailedError struct{ Err error }

func (e *FailedError) Error() string { return e.Err.Error() }
func (e *FailedError) Unwrap() error { return e.Err }

// IsUsage reports whether err is a UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// CheckFlags refuses, as a UsageError naming the engine, given flags that
// are not in takes.
func CheckFlags(engine string, given map[string]string, takes []string) error {
	var wrong []string
	for f := range given {
		if !slices.Contains(takes, f) {
			wrong = append(wrong, "--"+f)
		}
	}
	if len(wrong) == 0 {
		return nil
	}
	sort.Strings(wrong)
	var t []string
	for _, f := range takes {
		t = append(t, "--"+f)
	}
	return Usage(fmt.Errorf("engine %s does not take %s (its restore flags: %s)", engine, strings.Join(wrong, ", "), strings.Join(t, ", ")))
}
