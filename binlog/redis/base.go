package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// FormatVersion is the base manifest format this drkit writes and reads.
const FormatVersion = 1

// Base is a base backup's manifest: an RDB at offset Offset of history
// ReplID. The stream chunks of that history from Offset on roll it forward.
type Base struct {
	FormatVersion int    `json:"format_version"`
	Engine        string `json:"engine"`
	Cluster       string `json:"cluster"`
	ID            string `json:"id"`
	ReplID        string `json:"replid"`
	Offset        int64  `json:"offset"`
	// Time is when the primary began the RDB (its FULLRESYNC reply).
	Time       time.Time      `json:"time"`
	StopTime   time.Time      `json:"stop_time"`
	RDB        storage.Object `json:"rdb"`
	RDBSize    int64          `json:"rdb_size"`
	StoredSize int64          `json:"stored_size"`
}

// BackupID is the backup's id (snapshots.Identified).
func (b Base) BackupID() string { return b.ID }

// CheckBase checks a decoded manifest before anything uses it: a store is
// untrusted.
func CheckBase(b Base) error {
	if b.FormatVersion != FormatVersion || b.Engine != "redis" {
		return fmt.Errorf("a %s manifest of format %d; this drkit reads redis format %d", b.Engine, b.FormatVersion, FormatVersion)
	}
	if b.ID == "" || !isReplID(b.ReplID) || b.Offset < 0 {
		return fmt.Errorf("id %q, replid %q, offset %d: not a base backup", b.ID, b.ReplID, b.Offset)
	}
	prefix := snapshots.BaseKey(b.Cluster, b.ID)
	if !strings.HasPrefix(b.RDB.Key, prefix) || strings.Contains(b.RDB.Key, "..") || b.RDB.Size < 0 || b.RDB.PlainSize < -1 {
		return fmt.Errorf("RDB object %q is not in the backup's folder %s", b.RDB.Key, prefix)
	}
	return nil
}

// ListBases returns a region's complete base backups, oldest first (by
// offset within a history, then time), and the manifests it could not read.
func ListBases(ctx context.Context, p *storage.Pipeline, cluster string) ([]Base, []snapshots.Damaged, error) {
	out, damaged, err := snapshots.ListManifests(ctx, p, cluster, func(b Base) error {
		if b.Cluster != cluster {
			return fmt.Errorf("a manifest of cluster %q in cluster %q's folder", b.Cluster, cluster)
		}
		return CheckBase(b)
	})
	// Bases of one history by offset (no host's clock plays a part), of
	// different histories by time.
	slices.SortStableFunc(out, func(a, b Base) int {
		if a.ReplID == b.ReplID {
			return cmp.Compare(a.Offset, b.Offset)
		}
		return a.Time.Compare(b.Time)
	})
	return out, damaged, err
}

// storeBase streams an RDB from read into every region at once (it is
// never staged whole on disk) and then writes each region's manifest, which
// makes the backup complete there. A region whose store fails drops out
// (its error in failed) while the others go on; err is set when reading
// failed or no region stored the backup.
func storeBase(ctx context.Context, regions []*storage.Region, cluster string, s Sync, began time.Time, read func(io.Writer) (int64, error)) (b Base, failed []error, err error) {
	if err := ensureInfo(ctx, regions, cluster); err != nil {
		return Base{}, nil, err
	}
	id, err := snapshots.NewBackupID(ctx, regions, cluster, began)
	if err != nil {
		return Base{}, nil, err
	}
	key := snapshots.BaseKey(cluster, id, "dump.rdb")
	objs, failed, n, rerr := storage.PutEach(ctx, regions, key, read)
	if rerr != nil {
		return Base{}, failed, fmt.Errorf("base backup %s: %w", id, rerr)
	}
	b = Base{FormatVersion: FormatVersion, Engine: "redis", Cluster: cluster, ID: id, ReplID: s.ReplID, Offset: s.Offset,
		Time: began, RDBSize: n}
	stored := 0
	for i, r := range regions {
		if failed[i] == nil {
			rb := b
			rb.RDB, rb.StoredSize, rb.StopTime = objs[i], objs[i].Size, time.Now().UTC()
			failed[i] = snapshots.WriteManifest(ctx, r.Store, cluster, id, rb)
		}
		if failed[i] != nil {
			failed[i] = fmt.Errorf("region %s: %w", r.Name, failed[i])
			continue
		}
		stored++
	}
	if stored == 0 {
		return b, failed, fmt.Errorf("base backup %s: %w", id, errors.Join(failed...))
	}
	return b, failed, nil
}

// Backup takes a base backup through the replica handshake: PSYNC asks for
// a full resync with REPLCONF rdb-only (Redis 7+), so the primary sends the
// RDB alone. The backup is at the primary's offset then, in its current
// history, which drd's stream continues.
func Backup(ctx context.Context, dsn string, regions []*storage.Region, cluster string) (Base, error) {
	c, err := dial(ctx, dsn)
	if err != nil {
		return Base{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s, err := c.psync(ctx, "", 0, true)
	if err != nil {
		return Base{}, err
	}
	began := time.Now().UTC() // +FULLRESYNC: the RDB child starts now
	if !s.Full {
		return Base{}, errors.New("the primary did not send a full resync")
	}
	b, failed, err := storeBase(ctx, regions, cluster, s, began, c.readRDB)
	if err == nil {
		err = errors.Join(failed...) // a backup names every region it missed
	}
	return b, err
}

// ensureInfo writes <cluster>/cluster.json naming engine redis where it is
// missing (snapshots.EnsureClusterInfo).
func ensureInfo(ctx context.Context, regions []*storage.Region, cluster string) error {
	return snapshots.EnsureClusterInfo(ctx, regions, cluster, "redis")
}

// isReplID reports whether s is a replication id: 40 lower-case hex digits.
// A store is untrusted, and a replid is written into protocol lines.
func isReplID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
