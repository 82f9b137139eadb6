package ec2

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/drkit/drkit/internal/config"
)

// Cloud is one provider's API in one region, in drkit's terms: the Manager
// (copies, retention, snapshots of tagged volumes) calls only these, so
// that EC2 (on aws-sdk-go-v2) and OUTSCALE (snapshots/outscale: export to
// OOS, copy, import) share the planner, the retention and the jobs.
type Cloud interface {
	// List returns the account's own images or snapshots matching q.
	List(ctx context.Context, k Kind, q Query) ([]Resource, error)
	// Copy copies src, of s.SourceRegion, into this region, described as
	// desc, and returns the copy's id. EC2 returns once the copy is
	// started; OUTSCALE once its import is complete.
	Copy(ctx context.Context, s Spec, src Resource, desc string) (string, error)
	// AtCopyLimit says err is the region's limit of copies in flight: the
	// Manager waits and calls Copy again.
	AtCopyLimit(err error) bool
	// Tag puts tags on resources.
	Tag(ctx context.Context, ids []string, tags map[string]string) error
	// Wait waits until the image or snapshot is available, up to timeout,
	// polling between minD and maxD apart.
	Wait(ctx context.Context, k Kind, id string, timeout, minD, maxD time.Duration) error
	// Deregister deregisters an image; DeleteSnapshot deletes a snapshot.
	// Either gone already is no error.
	Deregister(ctx context.Context, id string) error
	DeleteSnapshot(ctx context.Context, id string) error
	// Volumes lists the volumes that have every tag.
	Volumes(ctx context.Context, tags map[string]string) ([]string, error)
	// Snapshot takes a snapshot of volume, described desc and tagged.
	Snapshot(ctx context.Context, volume, desc string, tags map[string]string) (string, error)
}

// Finisher is a Cloud whose copies need finishing after they exist (OUTSCALE:
// the import's wait and the removal of the transfer objects, which a run
// stopped after the import started left undone). The Manager calls Finish
// once a run's copies are made, with the run's plan.
type Finisher interface {
	Finish(ctx context.Context, s Spec, pl Plan) error
}

// Query selects resources: every tag in Tags, one of IDs, a description
// beginning with DescPrefix, only pending ones; zero fields select all.
type Query struct {
	Tags       map[string]string
	IDs        []string
	DescPrefix string
	Pending    bool
}

// Clients returns a provider's Cloud of a region for a profile ("" = the
// provider's default credentials).
type Clients interface {
	Client(ctx context.Context, profile, region string) (Cloud, error)
}

// ProviderEC2 is the default provider: AWS EC2 (or an EC2-compatible API
// at ec2.endpoints).
const ProviderEC2 = "ec2"

// A Provider builds its Clients from the config. Providers register in
// their package's init, as database/sql drivers do (snapshots/outscale).
type Provider func(cfg *config.Config, log *slog.Logger) (Clients, error)

var (
	providersMu sync.RWMutex
	providers   = map[string]Provider{}
)

// RegisterProvider makes a provider available by name (entries' provider:).
func RegisterProvider(name string, p Provider) {
	providersMu.Lock()
	defer providersMu.Unlock()
	if _, dup := providers[name]; dup {
		panic("ec2: provider " + name + " registered twice")
	}
	providers[name] = p
}

// Providers lists the registered providers, ec2 included.
func Providers() []string {
	providersMu.RLock()
	defer providersMu.RUnlock()
	out := []string{ProviderEC2}
	for n := range providers {
		out = append(out, n)
	}
	sort.Strings(out[1:])
	return out
}

func provider(name string) (Provider, error) {
	providersMu.RLock()
	p, ok := providers[name]
	providersMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("provider %q is not built in (have %v)", name, Providers())
	}
	return p, nil
}
