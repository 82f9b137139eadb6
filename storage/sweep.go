package storage

import (
	"context"
	"time"
)

// PendingUpload is a multipart upload that was started and not completed.
type PendingUpload struct {
	Key     string    `json:"key"`
	ID      string    `json:"upload_id"`
	Started time.Time `json:"started"`
}

// Sweeper is implemented by stores that can hold incomplete uploads (S3). Sweep
// aborts those started before cutoff; with dryRun it only lists them.
type Sweeper interface {
	Sweep(ctx context.Context, cutoff time.Time, dryRun bool) ([]PendingUpload, error)
}
