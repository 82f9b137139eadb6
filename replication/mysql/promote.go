package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	mywal "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/replication"
)

// PromoteOptions say which replica becomes the primary.
type PromoteOptions = replication.PromoteOptions

// Promote makes o.Replica the primary; see the package doc. The returned
// Promotion is not recorded: the caller records it (replication.Catalog).
func Promote(ctx context.Context, o PromoteOptions) (replication.PromoteResult, error) {
	o = o.WithDefaults()
	res := o.Result()
	rep, err := open(ctx, "replica "+o.Replica.Name, o.Replica.DSN, 2)
	if err != nil {
		return res, err
	}
	defer rep.Close()
	res.Promotion.Fenced, res.FenceNote = fence(ctx, o, rep)
	stored, ok, err := storeEnd(ctx, o)
	if err != nil {
		return res, err
	}
	if ok {
		res.StorePosition = stored.String()
		have, err := waitCovers(ctx, rep, stored, o.Wait)
		res.ReplicaPosition = have.String()
		if err != nil && !o.Force {
			return res, err
		}
		if err != nil {
			res.Gap = err.Error()
			o.Log.Warn("promoting despite missing transactions (--force)", "replica", o.Replica.Name, "gap", err)
		}
	}
	for _, q := range []string{"STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only=OFF"} {
		if _, err := rep.ExecContext(ctx, q); err != nil {
			return res, fmt.Errorf("replica %s: %s: %w", o.Replica.Name, q, err)
		}
	}
	if err := rep.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_current_pos").Scan(&res.Promotion.Position); err != nil {
		return res, fmt.Errorf("replica %s: read gtid_current_pos: %w", o.Replica.Name, err)
	}
	res.Promotion.At = time.Now().UTC()
	res.ClientChange = fmt.Sprintf("point writers at %s (it is writable now); the old primary %s", config.RedactDSN(o.Replica.DSN), fenceWord(res.Promotion.Fenced))
	return res, nil
}

func fenceWord(fenced bool) string {
	if fenced {
		return "is read_only (fenced)"
	}
	return "could not be fenced: make sure it stays down or read-only"
}

// fence makes the old primary read_only when it answers, then waits for the
// replica to apply everything it wrote: a planned switchover loses nothing.
func fence(ctx context.Context, o PromoteOptions, rep *sql.DB) (bool, string) {
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	old, err := open(fctx, "old primary", o.PrimaryDSN, 1)
	if err != nil {
		o.Log.Warn("the old primary does not answer; it is not fenced", "err", err)
		return false, "not reachable: " + err.Error()
	}
	defer old.Close()
	if _, err := old.ExecContext(fctx, "SET GLOBAL read_only=ON"); err != nil {
		return false, "SET GLOBAL read_only=ON failed: " + err.Error()
	}
	var pos string
	if err := old.QueryRowContext(fctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		return true, "fenced; its last position could not be read: " + err.Error()
	}
	want, err := mywal.ParsePos(pos)
	if err != nil {
		return true, "fenced; " + err.Error()
	}
	if _, err := waitCovers(ctx, rep, want, o.Wait); err != nil {
		return true, "fenced; the replica had not applied its last transactions: " + err.Error()
	}
	return true, "fenced (read_only) after the replica applied its last transaction " + pos
}

// storeEnd is the newest position the region's store holds.
func storeEnd(ctx context.Context, o PromoteOptions) (mywal.Pos, bool, error) {
	end, _, ok, err := (&mywal.Catalog{Pipeline: o.Region.Pipeline, Cluster: o.Cluster}).End(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("region %s: read the newest binlog position: %w", o.Region.Name, err)
	}
	return end, ok, nil
}

// waitCovers waits until the replica has applied want, else returns the gap.
func waitCovers(ctx context.Context, rep *sql.DB, want mywal.Pos, within time.Duration) (mywal.Pos, error) {
	deadline := time.Now().Add(within)
	for {
		var s string
		if err := rep.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_current_pos").Scan(&s); err != nil {
			return nil, fmt.Errorf("replica: read gtid_current_pos: %w", err)
		}
		have, err := mywal.ParsePos(s)
		if err != nil {
			return nil, err
		}
		if have.Covers(want) {
			return have, nil
		}
		if time.Now().After(deadline) {
			return have, fmt.Errorf("the replica has applied %s but %s is needed: missing %s (promote anyway with --force, losing them)", have, want, gap(have, want))
		}
		select {
		case <-ctx.Done():
			return have, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// gap lists, per GTID domain, the sequence numbers have lacks.
func gap(have, want mywal.Pos) string {
	var out []string
	for d, w := range want {
		h, ok := have[d]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("domain %d up to %d", d, w.Seq))
		case h.Seq < w.Seq:
			out = append(out, fmt.Sprintf("domain %d: %d transaction(s), seq %d to %d", d, w.Seq-h.Seq, h.Seq+1, w.Seq))
		}
	}
	return strings.Join(out, "; ")
}
