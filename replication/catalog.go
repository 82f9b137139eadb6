package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/storage"
)

// Registration states of a replica record. What a replica is doing now
// (catching up, streaming, broken) comes from the monitor; see State.
const (
	// RecordCreating: drctl replica create is loading it.
	RecordCreating = "creating"
	// RecordReady: created and replicating.
	RecordReady = "ready"
	// RecordFailed: the create failed; Error says why. Running create again
	// retries it.
	RecordFailed = "failed"
	// RecordPromoted: promoted to primary; no longer a replica.
	RecordPromoted = "promoted"
)

// Record is a replica registered in a cluster's catalog.
type Record struct {
	Cluster string `json:"cluster"`
	Name    string `json:"name"`
	Engine  string `json:"engine"`
	Region  string `json:"region"`
	// DSN reaches the replica; its password, if any, is config.Redacted.
	DSN string `json:"dsn"`
	// Mode is how it replicates: "stream" (from the primary), "from-store"
	// (PostgreSQL: replays WAL from the region's store only) or "replicaof" (Redis).
	Mode string `json:"mode"`
	// DataDir is a PostgreSQL replica's data folder, when drctl made it.
	DataDir string `json:"data_dir,omitempty"`
	// Backup is the base backup it was created from, if any.
	Backup  string    `json:"backup,omitempty"`
	Status  string    `json:"status"`
	Error   string    `json:"error,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Promotion records which server became a cluster's primary.
type Promotion struct {
	Cluster string `json:"cluster"`
	// Replica is the promoted replica's name.
	Replica string `json:"replica"`
	Region  string `json:"region"`
	// DSN reaches the new primary; its password, if any, is config.Redacted.
	DSN string    `json:"dsn"`
	At  time.Time `json:"at"`
	// Position is the log position where the new primary took over
	// (PostgreSQL: timeline and LSN; MariaDB: GTID position).
	Position string `json:"position"`
	// OldPrimary is the DSN of the primary it replaced (redacted), and
	// Fenced whether that one was made read-only.
	OldPrimary string `json:"old_primary"`
	Fenced     bool   `json:"fenced"`
	// PublicIP says where the public IP moved, when one did (failover).
	PublicIP string `json:"public_ip,omitempty"`
}

// Catalog reads and writes replica records and promotions in regions' stores.
type Catalog struct {
	Cluster string
	// Regions are written to together; reads take the first that answers.
	Regions []*storage.Region
	// Log is told about regions a write missed (may be nil).
	Log *slog.Logger
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// CheckName refuses a replica name that is not safe as a key segment.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("replica name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func (c *Catalog) recordKey(name string) string {
	return path.Join(c.Cluster, "replicas", name+".json")
}

func (c *Catalog) promotionKey() string { return path.Join(c.Cluster, "replication", "primary.json") }

// Put writes rec (password removed) to every region. It fails only when no
// region took it: during a disaster some regions are down, and the record
// must still reach the others (each miss is logged).
func (c *Catalog) Put(ctx context.Context, rec Record) error {
	if err := CheckName(rec.Name); err != nil {
		return err
	}
	rec.DSN = config.RedactDSN(rec.DSN)
	rec.Updated = time.Now().UTC()
	return c.putAll(ctx, c.recordKey(rec.Name), rec)
}

// Promoted records p (passwords removed) in every region.
func (c *Catalog) Promoted(ctx context.Context, p Promotion) error {
	p.DSN, p.OldPrimary = config.RedactDSN(p.DSN), config.RedactDSN(p.OldPrimary)
	return c.putAll(ctx, c.promotionKey(), p)
}

func (c *Catalog) putAll(ctx context.Context, key string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range c.Regions {
		if err := r.Store.Put(ctx, key, bytes.NewReader(b)); err != nil {
			errs = append(errs, fmt.Errorf("region %s: write %s: %w", r.Name, key, err))
		}
	}
	if len(errs) < len(c.Regions) {
		for _, err := range errs {
			if c.Log != nil {
				c.Log.Warn("a region missed a catalog record; it is written again by the next change", "err", err)
			}
		}
		return nil
	}
	return errors.Join(errs...)
}

// View is who a cluster's primary is now and which replicas follow it.
type View struct {
	// PrimaryDSN and PrimaryRegion: the newest promotion's, else the config's.
	PrimaryDSN, PrimaryRegion string
	Promotion                 *Promotion
	Replicas                  []config.Replica
	Records                   map[string]Record
}

// View merges the config with the catalog: the newest promotion (if any)
// names the primary, and the replicas are Merge's minus the promoted one.
func (c *Catalog) View(ctx context.Context, cl config.Cluster) (View, error) {
	v := View{PrimaryDSN: cl.DSN, PrimaryRegion: cl.Region, Records: map[string]Record{}}
	recs, err := c.List(ctx)
	if err != nil {
		return v, err
	}
	for _, r := range recs {
		v.Records[r.Name] = r
	}
	p, ok, err := c.Promotion(ctx)
	if err != nil {
		return v, err
	}
	promoted := ""
	switch {
	case ok && !cl.TrustsHost(p.DSN):
		c.untrusted("promotion", p.Replica, p.DSN)
	case ok:
		v.Promotion, promoted = &p, p.Replica
		v.PrimaryDSN, v.PrimaryRegion = WithPassword(p.DSN, cl.DSN), p.Region
	}
	for _, r := range recs {
		if !cl.TrustsHost(r.DSN) && r.Status != RecordPromoted && r.Status != RecordFailed {
			c.untrusted("replica", r.Name, r.DSN)
		}
	}
	for _, r := range Merge(cl, recs) {
		if r.Name != promoted {
			v.Replicas = append(v.Replicas, r)
		}
	}
	return v, nil
}

// untrusted says, once per View, that a record names a host drd will not
// connect to.
func (c *Catalog) untrusted(kind, name, dsn string) {
	if c.Log != nil {
		c.Log.Warn("ignoring a replication record on a host the config does not trust (or with weaker TLS than the cluster's dsn): add the host to the cluster's hosts if it is yours",
			"cluster", c.Cluster, "record", kind, "name", name, "host", config.DSNHost(dsn))
	}
}

// List returns the cluster's registered replicas, by name, from the first
// region that answers.
func (c *Catalog) List(ctx context.Context) ([]Record, error) {
	var errs []error
	for _, r := range c.Regions {
		recs, err := c.list(ctx, r)
		if err == nil {
			return recs, nil
		}
		errs = append(errs, fmt.Errorf("region %s: %w", r.Name, err))
	}
	return nil, errors.Join(errs...)
}

func (c *Catalog) list(ctx context.Context, r *storage.Region) ([]Record, error) {
	prefix := path.Join(c.Cluster, "replicas") + "/"
	var out []Record
	for info, err := range r.Store.List(ctx, prefix) {
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(info.Key, ".json") || strings.Contains(strings.TrimPrefix(info.Key, prefix), "/") {
			continue
		}
		var rec Record
		if err := readJSON(ctx, r.Store, info.Key, &rec); err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Get returns the record of replica name.
func (c *Catalog) Get(ctx context.Context, name string) (Record, error) {
	var errs []error
	for _, r := range c.Regions {
		var rec Record
		err := readJSON(ctx, r.Store, c.recordKey(name), &rec)
		if err == nil {
			return rec, nil
		}
		errs = append(errs, fmt.Errorf("region %s: %w", r.Name, err))
	}
	return Record{}, errors.Join(errs...)
}

// Promotion returns the newest promotion recorded in any region; ok is false
// when none was.
func (c *Catalog) Promotion(ctx context.Context) (p Promotion, ok bool, err error) {
	var errs []error
	for _, r := range c.Regions {
		var got Promotion
		err := readJSON(ctx, r.Store, c.promotionKey(), &got)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			errs = append(errs, fmt.Errorf("region %s: %w", r.Name, err))
		case !ok || got.At.After(p.At):
			p, ok = got, true
		}
	}
	if ok {
		return p, true, nil
	}
	return p, false, errors.Join(errs...)
}

func readJSON(ctx context.Context, s storage.Store, key string, v any) error {
	rc, err := s.Get(ctx, key, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(v); err != nil {
		return fmt.Errorf("%s in %s is not a drkit record: %w", key, s, err)
	}
	return nil
}

// Merge returns the replicas drd watches: those in the config, then the
// registered ones the config does not name (by name), with the cluster's
// password filled in. Promoted and failed records are left out, and so are
// records on a host the config does not trust (config.Cluster.TrustsHost): a
// store is untrusted, and its records must not make drd dial, with the
// cluster's password, a host the config did not name.
func Merge(cl config.Cluster, recs []Record) []config.Replica {
	out := slices.Clone(cl.Replicas)
	for _, r := range recs {
		if r.Status == RecordPromoted || r.Status == RecordFailed || !cl.TrustsHost(r.DSN) {
			continue
		}
		if slices.ContainsFunc(out, func(c config.Replica) bool { return c.Name == r.Name }) {
			continue
		}
		out = append(out, config.Replica{Name: r.Name, Region: r.Region, DSN: WithPassword(r.DSN, cl.DSN)})
	}
	return out
}

// WithPassword puts from's password where dsn has config.Redacted: a
// registered replica (or promoted primary) shares the cluster's credentials.
func WithPassword(dsn, from string) string {
	if !strings.Contains(dsn, config.Redacted) {
		return dsn
	}
	pw, ok := config.Password(from)
	if !ok {
		return dsn
	}
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err == nil && u.User != nil {
			u.User = url.UserPassword(u.User.Username(), pw)
			return u.String()
		}
	}
	return strings.Replace(dsn, config.Redacted, pw, 1)
}

// PromoteOptions say which replica becomes the primary; every engine's
// Promote takes them.
type PromoteOptions struct {
	Cluster string
	// PrimaryDSN reaches the current primary, to fence it if it answers.
	PrimaryDSN string
	Replica    config.Replica
	// Region's store holds the log the replica must have (PostgreSQL and
	// MySQL; Redis keeps none).
	Region *storage.Region
	// Force promotes even when the replica lacks log the store holds.
	Force bool
	// Wait bounds each wait for the replica to catch up (default 30s).
	Wait time.Duration
	Log  *slog.Logger
}

// WithDefaults fills in Wait and Log.
func (o PromoteOptions) WithDefaults() PromoteOptions {
	if o.Wait <= 0 {
		o.Wait = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Result starts a PromoteResult for o.
func (o PromoteOptions) Result() PromoteResult {
	return PromoteResult{Promotion: Promotion{Cluster: o.Cluster, Replica: o.Replica.Name,
		Region: o.Replica.Region, DSN: o.Replica.DSN, OldPrimary: o.PrimaryDSN}}
}

// Failed records that creating rec failed with err, and returns err.
func (c *Catalog) Failed(ctx context.Context, rec Record, err error) error {
	rec.Status, rec.Error = RecordFailed, err.Error()
	if perr := c.Put(ctx, rec); perr != nil && c.Log != nil {
		c.Log.Error("could not record the failed create", "replica", rec.Name, "err", perr)
	}
	return err
}

// PromoteResult says what a promotion did and found.
type PromoteResult struct {
	Promotion Promotion `json:"promotion"`
	// StorePosition is the newest log position the region's store holds and
	// ReplicaPosition what the replica had when promoted.
	StorePosition   string `json:"store_position,omitempty"`
	ReplicaPosition string `json:"replica_position,omitempty"`
	// Gap is set when --force promoted a replica that lacked some of the store's log.
	Gap string `json:"gap,omitempty"`
	// FenceNote says what happened to the old primary.
	FenceNote string `json:"fence"`
	// ClientChange says what clients must change.
	ClientChange string `json:"client_change"`
	// DNS says what the DNS switch did, when one was asked for.
	DNS string `json:"dns,omitempty"`
	// PublicIP says what the public IP move did, when one was asked for.
	PublicIP string `json:"public_ip,omitempty"`
}
