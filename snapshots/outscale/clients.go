package outscale

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/snapshots/ec2"
	"github.com/drkit/drkit/storage"
	s3store "github.com/drkit/drkit/storage/s3"
)

func init() {
	ec2.RegisterProvider("outscale", func(cfg *config.Config, log *slog.Logger) (ec2.Clients, error) {
		return NewClients(cfg, log)
	})
}

// Clients are the OUTSCALE Clouds of a config's Regions (ec2.Clients),
// made on first use and kept.
type Clients struct {
	cfg       *config.Config
	log       *slog.Logger
	ak, sk    string
	hc        *http.Client
	Progress  func(Progress)
	mu        sync.Mutex
	clouds    map[string]*Cloud
	storeOpts storage.Options
}

// NewClients reads the keys from the environment variables outscale: names.
func NewClients(cfg *config.Config, log *slog.Logger) (*Clients, error) {
	o := cfg.Outscale
	ak, sk := os.Getenv(o.AccessKeyEnv), os.Getenv(o.SecretKeyEnv)
	if ak == "" || sk == "" {
		return nil, fmt.Errorf("outscale: set %s and %s to the access key and secret key of the account (EIM user) that copies", o.AccessKeyEnv, o.SecretKeyEnv)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Clients{cfg: cfg, log: log, ak: ak, sk: sk, clouds: map[string]*Cloud{},
		storeOpts: storeOptions(cfg, log)}, nil
}

// Client implements ec2.Clients (profile is not used: the keys are the
// environment's).
func (c *Clients) Client(ctx context.Context, _, region string) (ec2.Cloud, error) {
	return c.cloud(ctx, region)
}

func (c *Clients) cloud(ctx context.Context, region string) (*Cloud, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clouds[region]; ok {
		return cl, nil
	}
	ep := c.cfg.Outscale.Endpoints[region]
	if ep == "" {
		ep = Endpoint(region)
	}
	cl := &Cloud{Client: NewClient(region, ep, c.ak, c.sk, c.hc, c.log), Source: c.cloud, Format: c.cfg.Outscale.DiskImageFormat,
		Timeout: time.Duration(c.cfg.EC2.CopyTimeout), PollMin: time.Duration(c.cfg.EC2.PollInterval),
		PollMax: max(time.Duration(c.cfg.EC2.PollInterval), 2*time.Minute), Progress: c.Progress}
	if u := c.cfg.Outscale.OOS[region]; u != "" {
		st, err := storage.Open(ctx, u, c.storeOpts)
		if err != nil {
			return nil, fmt.Errorf("outscale.oos.%s: %w", region, err)
		}
		b, ok := st.(*s3store.Store)
		if !ok {
			return nil, fmt.Errorf("outscale.oos.%s: an s3:// store URL is needed", region)
		}
		cl.OOS = b
	}
	c.clouds[region] = cl
	return cl, nil
}

// PublicIPs returns the public-IP mover of region (failover).
func (c *Clients) PublicIPs(region string) PublicIPs {
	ep := c.cfg.Outscale.Endpoints[region]
	if ep == "" {
		ep = Endpoint(region)
	}
	return PublicIPs{Client: NewClient(region, ep, c.ak, c.sk, c.hc, c.log)}
}

// storeOptions are the config's storage: options (part size, concurrency,
// threshold, resumable-upload state), as the regions' stores get them.
func storeOptions(cfg *config.Config, log *slog.Logger) storage.Options {
	o := regions.Upload(cfg)
	o.Log = log
	return o
}
