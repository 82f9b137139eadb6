package storage

import (
	"context"
	"strings"
	"time"
)

// PendingUpload is a multipart upload that was started and not completed.
type PendingUpload struct {
	Key     string    `json:"key"`
	ID      string    `json:"upload_id"`
	Started time.Time `json:"started"`
}

// Sweeper is implemented by stores that can hold incomplete uploads (S3). Sweep
// aborts those started before cutoff whose keys (relative to the store) owns
// accepts; with dryRun it only lists them. owns is required: a bucket is often
// shared, and other applications' uploads are never drkit's to abort.
type Sweeper interface {
	Sweep(ctx context.Context, cutoff time.Time, dryRun bool, owns func(key string) bool) ([]PendingUpload, error)
}

// OwnedPrefixes accepts the keys under one of prefixes (each a folder, as
// "orders/"), and nothing when there are none.
func OwnedPrefixes(prefixes ...string) func(key string) bool {
	return func(key string) bool {
		for _, p := range prefixes {
			if p != "" && strings.HasPrefix(key, p) {
				return true
			}
		}
		return false
	}
}
