package s3

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/drkit/drkit/storage"
)

var _ storage.Sweeper = (*Store)(nil)

// Sweep aborts the store's multipart uploads started before cutoff, which frees
// their parts. It exists because MinIO ignores the AbortIncompleteMultipartUpload
// lifecycle rule, and a crashed upload that nobody resumes would keep its parts
// (and their cost) forever. dryRun lists without aborting.
func (s *Store) Sweep(ctx context.Context, cutoff time.Time, dryRun bool, owns func(key string) bool) ([]storage.PendingUpload, error) {
	var out []storage.PendingUpload
	// No Prefix: MinIO matches it only against whole keys, so "prod/" would list
	// nothing. List the bucket's uploads and keep this store's.
	in := &s3.ListMultipartUploadsInput{Bucket: &s.bucket}
	for {
		page, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return out, s.wrap("list uploads under", s.prefix, err)
		}
		for _, up := range page.Uploads {
			key, ours := strings.CutPrefix(aws.ToString(up.Key), s.prefix)
			if !ours || owns == nil || !owns(key) || !aws.ToTime(up.Initiated).Before(cutoff) {
				continue
			}
			p := storage.PendingUpload{Key: key, ID: aws.ToString(up.UploadId), Started: aws.ToTime(up.Initiated)}
			if !dryRun {
				if err := s.abortUpload(ctx, up); err != nil {
					return out, err
				}
			}
			out = append(out, p)
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

func (s *Store) abortUpload(ctx context.Context, up types.MultipartUpload) error {
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: up.Key, UploadId: up.UploadId})
	if err != nil && !isNoSuchUpload(err) {
		return s.wrap("abort upload of", aws.ToString(up.Key), err)
	}
	return nil
}
