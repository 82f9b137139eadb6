package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drkit/drkit/storage"
)

var _ storage.Swapper = (*Store)(nil)

// maxSwapped bounds the objects GetVersion reads: lease records.
const maxSwapped = 1 << 20

// GetVersion implements storage.Swapper: the object and its ETag.
func (s *Store) GetVersion(ctx context.Context, key string) ([]byte, string, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return nil, "", err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &full})
	if err != nil {
		return nil, "", s.wrap("get", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxSwapped+1))
	if err != nil {
		return nil, "", s.wrap("get", key, err)
	}
	if len(data) > maxSwapped {
		return nil, "", fmt.Errorf("get %s: more than %d bytes: not a record", key, maxSwapped)
	}
	return data, aws.ToString(out.ETag), nil
}

// PutIfVersion implements storage.Swapper with a conditional PutObject
// (If-Match on the ETag read): S3 and MinIO refuse it with 412 when the
// object changed. A retried request whose first attempt succeeded is
// refused too; the caller (a lease) reads its record back to tell.
func (s *Store) PutIfVersion(ctx context.Context, key string, data []byte, ver string) (string, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: &full, Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))), IfMatch: aws.String(ver)}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		if isPreconditionFailed(err) {
			return "", fmt.Errorf("%s: %w", key, storage.ErrChanged)
		}
		if err := s.wrap("put", key, err); errors.Is(err, storage.ErrNotFound) {
			return "", fmt.Errorf("%s: %w (it is gone)", key, storage.ErrChanged)
		} else {
			return "", err
		}
	}
	return aws.ToString(out.ETag), nil
}
