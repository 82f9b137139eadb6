package replication

import (
	"context"
	"fmt"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/storage"
)

// PromoteRun is one promotion of a replica to primary, in the order drctl
// promote runs it: the engine's promotion (fence the old primary, wait, check
// the store, promote), then the record of it in every region's catalog (drd
// follows it), then the replica's record, then the DNS name, then the public
// IP (both only after a promotion that passed the gap check, or --force).
type PromoteRun struct {
	Catalog *Catalog
	View    View // the catalog's view the replica was picked from
	Replica config.Replica
	// RegionName is the replica's region; Region its store (nil when it
	// could not be opened), which NeedsStore engines check the replica
	// against.
	RegionName string
	Region     *storage.Region
	NeedsStore bool
	// Promote is the engine's promotion.
	Promote func(ctx context.Context) (PromoteResult, error)
	// SwitchDNS points the clients' name at the replica's DSN; nil: no
	// DNS switch.
	SwitchDNS func(ctx context.Context, replicaDSN string) (string, error)
	// MoveIP moves the public IP to the replica's stand-by VM; nil: no
	// move. What it did is kept in the promotion record.
	MoveIP func(ctx context.Context) (string, error)
}

// Run promotes, records and switches; each failure says what was done
// already.
func (p PromoteRun) Run(ctx context.Context) (PromoteResult, error) {
	if p.Region == nil && p.NeedsStore {
		return PromoteResult{}, fmt.Errorf("region %s's store is needed to check the replica has all its log, and it could not be opened", p.RegionName)
	}
	res, err := p.Promote(ctx)
	if err != nil {
		return res, err
	}
	if err := p.Catalog.Promoted(ctx, res.Promotion); err != nil {
		return res, fmt.Errorf("promoted, but the promotion could not be recorded in any region (drd keeps shipping from the old primary's dsn until it is): %w", err)
	}
	if rec, ok := p.View.Records[p.Replica.Name]; ok {
		rec.Status = RecordPromoted
		_ = p.Catalog.Put(ctx, rec)
	}
	if p.SwitchDNS != nil {
		if res.DNS, err = p.SwitchDNS(ctx, p.Replica.DSN); err != nil {
			return res, fmt.Errorf("promoted and recorded, but the DNS switch failed (run it again or switch by hand): %w", err)
		}
	}
	if p.MoveIP != nil {
		if res.PublicIP, err = p.MoveIP(ctx); err != nil {
			return res, fmt.Errorf("promoted and recorded, but the public IP move failed (run it again or move it by hand): %w", err)
		}
		res.Promotion.PublicIP = res.PublicIP
		if err := p.Catalog.Promoted(ctx, res.Promotion); err != nil {
			return res, fmt.Errorf("promoted and the public IP moved, but the move could not be added to the promotion record: %w", err)
		}
	}
	return res, nil
}
