package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/replication"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
)

// PromoteOptions say which replica becomes the primary.
type PromoteOptions = replication.PromoteOptions

// Promote makes o.Replica the primary; see the package doc. The returned
// Promotion is not recorded: the caller records it (replication.Catalog).
func Promote(ctx context.Context, o PromoteOptions) (replication.PromoteResult, error) {
	o = o.WithDefaults()
	res := o.Result()
	rep, err := OpenSide(ctx, "standby "+o.Replica.Name, o.Replica.DSN)
	if err != nil {
		return res, err
	}
	defer rep.Pool.Close()
	var inRecovery bool
	if err := rep.Pool.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return res, fmt.Errorf("standby %s: %w", o.Replica.Name, err)
	}
	if !inRecovery {
		return res, fmt.Errorf("%s is not a standby (it is not in recovery): it may have been promoted already", o.Replica.Name)
	}
	res.Promotion.Fenced, res.FenceNote = fence(ctx, o, rep)
	st := pgsnap.Status(ctx, o.Region.Pipeline, o.Cluster, nil, time.Now())
	if st.Error != "" && st.DurableLSN == "" {
		return res, fmt.Errorf("region %s: %s", o.Region.Name, st.Error)
	}
	if st.DurableLSN != "" {
		res.StorePosition = fmt.Sprintf("timeline %d, %s", st.Timeline, st.DurableLSN)
		err := rep.WaitFor(ctx, st.DurableLSN, o.Wait)
		res.ReplicaPosition = replayLSN(ctx, rep)
		if err != nil {
			gap := fmt.Errorf("standby %s has replayed WAL up to %s but region %s holds it up to %s: %s of WAL missing (promote anyway with --force, losing it)",
				o.Replica.Name, res.ReplicaPosition, o.Region.Name, st.DurableLSN, gapBytes(res.ReplicaPosition, st.DurableLSN))
			if !o.Force {
				return res, gap
			}
			res.Gap = gap.Error()
			o.Log.Warn("promoting despite missing WAL (--force)", "replica", o.Replica.Name, "gap", gap)
		}
	}
	var promoted bool
	if err := rep.Pool.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&promoted); err != nil || !promoted {
		return res, fmt.Errorf("standby %s: pg_promote did not finish within 60s: %v", o.Replica.Name, err)
	}
	var tli, lsn string
	if err := rep.Pool.QueryRow(ctx, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int::text, pg_current_wal_lsn()::text").Scan(&tli, &lsn); err != nil {
		return res, fmt.Errorf("promoted %s: read its position: %w", o.Replica.Name, err)
	}
	res.Promotion.Position = "timeline " + tli + ", " + lsn
	if res.Promotion.Fenced {
		dropSlot(ctx, o)
	}
	res.Promotion.At = time.Now().UTC()
	res.ClientChange = fmt.Sprintf("point writers at %s (it is the primary now, timeline %s); the old primary %s", config.RedactDSN(o.Replica.DSN), tli, fenceWord(res.Promotion.Fenced))
	return res, nil
}

func fenceWord(fenced bool) string {
	if fenced {
		return "refuses writes (default_transaction_read_only, fenced)"
	}
	return "could not be fenced: make sure it stays down or read-only"
}

func replayLSN(ctx context.Context, rep *Side) string {
	var lsn *string
	_ = rep.Pool.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn()::text").Scan(&lsn)
	if lsn == nil {
		return "unknown"
	}
	return *lsn
}

func gapBytes(have, want string) string {
	h, err1 := pgwal.ParseLSN(have)
	w, err2 := pgwal.ParseLSN(want)
	if err1 != nil || err2 != nil || w < h {
		return "some"
	}
	return fmt.Sprintf("%d bytes", uint64(w-h))
}

// fence makes the old primary refuse writes when it answers: new
// transactions are read-only and client sessions are ended (drd's WAL
// sender keeps shipping), then the standby is waited for until it has
// replayed the old primary's last WAL.
func fence(ctx context.Context, o PromoteOptions, rep *Side) (bool, string) {
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	old, err := pgx.Connect(fctx, o.PrimaryDSN)
	if err != nil {
		o.Log.Warn("the old primary does not answer; it is not fenced", "err", err)
		return false, "not reachable: " + err.Error()
	}
	defer old.Close(context.Background())
	for _, q := range []string{
		"ALTER SYSTEM SET default_transaction_read_only = on",
		"SELECT pg_reload_conf()",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
	} {
		if _, err := old.Exec(fctx, q); err != nil {
			return false, q + ": " + err.Error()
		}
	}
	var lsn string
	if err := old.QueryRow(fctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return true, "fenced; its last position could not be read: " + err.Error()
	}
	if err := rep.WaitFor(ctx, lsn, o.Wait); err != nil {
		return true, "fenced; the standby had not replayed its last WAL " + lsn + ": " + err.Error()
	}
	return true, "fenced (default_transaction_read_only, sessions ended) after the standby replayed its last WAL " + lsn
}

// dropSlot drops the promoted standby's slot on the fenced old primary,
// which would otherwise keep WAL there forever.
func dropSlot(ctx context.Context, o PromoteOptions) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	old, err := pgx.Connect(dctx, o.PrimaryDSN)
	if err != nil {
		return
	}
	defer old.Close(context.Background())
	// The walreceiver lets go of the slot when the standby promotes; wait for that.
	for range 50 {
		tag, err := old.Exec(dctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", SlotName(o.Replica.Name))
		if err != nil || tag.RowsAffected() > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	o.Log.Warn("the promoted standby's slot on the old primary is still in use; drop it there", "slot", SlotName(o.Replica.Name))
}
