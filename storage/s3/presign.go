package s3

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Location is the store's bucket and key prefix ("" or ending in "/"): what
// another service must be told to write where the store reads (an OUTSCALE
// export task's OsuBucket and OsuPrefix).
func (s *Store) Location() (bucket, prefix string) { return s.bucket, s.prefix }

// Presign returns a URL that lets its holder GET key for ttl without
// credentials (OUTSCALE imports a snapshot or an image from one).
func (s *Store) Presign(ctx context.Context, key string, ttl time.Duration) (string, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return "", err
	}
	req, err := s3.NewPresignClient(s.client).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &full},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", s.wrap("presign", key, err)
	}
	return req.URL, nil
}
