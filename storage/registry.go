package storage

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Options tune how a store uploads. Zero values mean the defaults below.
type Options struct {
	// PartSize is the first multipart part size; it grows for very large objects
	// so that none needs more than MaxParts parts. Default 16 MiB, at least 5 MiB.
	PartSize int64
	// Concurrency is how many parts upload at once. Default 4.
	Concurrency int
	// Threshold: objects of known size above it use multipart. Default 100 MiB.
	Threshold int64
	// StateDir keeps resumable-upload state; "" disables resuming.
	StateDir string
	// OnPart, if set, is called after each multipart part is stored or found
	// already stored by a resumed upload.
	OnPart func(PartEvent)
	// Log receives warnings and resume notices; nil means slog.Default().
	Log *slog.Logger
}

// PartEvent reports one part of a multipart upload.
type PartEvent struct {
	Key     string
	Number  int32
	Size    int64
	Resumed bool // the part was already stored; it was not sent again
}

// Defaults for Options.
const (
	DefaultPartSize    = 16 << 20
	MinPartSize        = 5 << 20 // S3's minimum for every part but the last
	DefaultConcurrency = 4
	DefaultThreshold   = 100 << 20
	MaxParts           = 10000
)

// WithDefaults returns o with zero fields set to the defaults.
func (o Options) WithDefaults() Options {
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	o.PartSize = max(o.PartSize, MinPartSize)
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Threshold <= 0 {
		o.Threshold = DefaultThreshold
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o
}

// Opener opens a store from its URL; adapters register one per scheme.
type Opener func(ctx context.Context, u *url.URL, opts Options) (Store, error)

// URLCheck returns what is wrong with a store URL of one scheme, or nil. It
// reads the URL only: config validation runs it without opening anything.
type URLCheck func(u *url.URL) error

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
	checks     = map[string]URLCheck{}
)

// Register makes an adapter available for a URL scheme. It panics if called twice
// for one scheme, as database/sql.Register does: that is a programming error.
func Register(scheme string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[scheme]; dup {
		panic("storage: Register called twice for scheme " + scheme)
	}
	registry[scheme] = open
}

// RegisterCheck adds the URL check of a registered scheme: CheckURL and Open
// run it, so a typo in a config is caught before a store is opened.
func RegisterCheck(scheme string, check URLCheck) {
	registryMu.Lock()
	defer registryMu.Unlock()
	checks[scheme] = check
}

// CheckURL returns what is wrong with a store URL: not a URL, a scheme no
// adapter registered, or what the scheme's own check finds. It opens nothing.
func CheckURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("not a URL: %s", strings.TrimPrefix(err.Error(), "parse "))
	}
	registryMu.RLock()
	_, ok := registry[u.Scheme]
	check := checks[u.Scheme]
	registryMu.RUnlock()
	switch {
	case !ok && len(Schemes()) == 0:
		return fmt.Errorf("scheme %q: this program has no store adapter built in (it must import storage/all)", u.Scheme)
	case !ok:
		return fmt.Errorf("scheme %q is not supported; allowed: %s (for example file:///var/lib/drkit/r1 or s3://bucket/prefix)", u.Scheme, strings.Join(Schemes(), ", "))
	case check != nil:
		return check(u)
	}
	return nil
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for s := range registry {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Open opens the store at rawURL with the adapter registered for its scheme.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store URL: %w", err)
	}
	registryMu.RLock()
	open, ok := registry[u.Scheme]
	check := checks[u.Scheme]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("store URL scheme %q is not supported; registered: %s", u.Scheme, strings.Join(Schemes(), ", "))
	}
	if check != nil {
		if err := check(u); err != nil {
			return nil, fmt.Errorf("store URL %s: %w", u.Redacted(), err)
		}
	}
	return open(ctx, u, opts.WithDefaults())
}
