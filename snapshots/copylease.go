package snapshots

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/drkit/drkit/storage"
)

// A copy into a region writes log objects first and manifests last, so a
// backup it brings is invisible to retention until its end. Prune deletes the
// log older than the oldest backup it sees: running between the two, it would
// delete log the incoming backup needs. So a copy holds a lease in the target
// region while it runs (<cluster>/copying/<id>.json, written before any log
// object, removed after the last manifest), and prune deletes no log while a
// fresh lease is there. Prune lists the log before it looks for leases: any
// log object it saw that a copy wrote was written after that copy's lease.

// copyLeaseTTL is how long an abandoned lease (a copy that was killed) holds
// retention back: a copy renews nothing, so it covers the longest copy.
const copyLeaseTTL = 24 * time.Hour

func copyLeasePrefix(cluster string) string { return cluster + "/copying/" }

// BeginCopy writes a copy lease for cluster into st and returns the func
// that removes it.
func BeginCopy(ctx context.Context, st storage.Store, cluster, from string) (end func(), err error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	key := copyLeasePrefix(cluster) + hex.EncodeToString(b[:]) + ".json"
	body, _ := json.Marshal(map[string]any{"from": from, "started": time.Now().UTC()})
	if err := st.Put(ctx, key, strings.NewReader(string(body))); err != nil {
		return nil, fmt.Errorf("write the copy lease %s: %w", key, err)
	}
	return func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = st.Delete(dctx, key)
	}, nil
}

// CopyInProgress returns the key of a fresh copy lease of cluster in st, ""
// when there is none: prune then deletes no log.
func CopyInProgress(ctx context.Context, st storage.Store, cluster string, now time.Time) (string, error) {
	for info, err := range st.List(ctx, copyLeasePrefix(cluster)) {
		if err != nil {
			return "", fmt.Errorf("look for copies in progress: %w", err)
		}
		if now.Sub(info.ModTime) < copyLeaseTTL {
			return info.Key, nil
		}
	}
	return "", nil
}
