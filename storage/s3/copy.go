package s3

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/drkit/drkit/storage"
)

var _ storage.ServerSideCopier = (*Store)(nil)

// maxCopyObject is the largest object one CopyObject may copy.
const maxCopyObject = 5 << 30

// CopyFrom copies key from src server-side when src is an S3 store on the same
// endpoint and region with the same credentials: CopyObject up to the multipart
// threshold (and 5 GiB), UploadPartCopy in parallel parts beyond.
func (s *Store) CopyFrom(ctx context.Context, src storage.Store, key string, size int64) (bool, error) {
	from, ok := src.(*Store)
	if !ok || from.endpoint != s.endpoint || from.region != s.region || from.credID == "" || from.credID != s.credID {
		return false, nil
	}
	full, err := s.fullKey(key)
	if err != nil {
		return true, err
	}
	source := copySource(from.bucket, from.prefix+key)
	if size <= min(s.opts.Threshold, maxCopyObject) {
		_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &s.bucket, Key: &full, CopySource: &source})
		if err != nil {
			return true, s.wrap("server-side copy of", key, err)
		}
		return true, nil
	}
	return true, s.copyParts(ctx, key, full, source, size)
}

// copyParts copies an object in ranges with UploadPartCopy. No checksum algorithm
// is set: the bytes never leave the server, which checks its own copy.
func (s *Store) copyParts(ctx context.Context, key, full, source string, size int64) error {
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &full})
	if err != nil {
		return s.wrap("start server-side copy of", key, err)
	}
	u := &upload{s: s, key: key, full: full, id: aws.ToString(out.UploadId)}
	partSize := newPlan(s.opts, size).base
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Concurrency)
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+partSize {
		end := min(off+partSize, size) - 1
		g.Go(func() error {
			res, err := s.client.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket: &s.bucket, Key: &full, UploadId: &u.id, PartNumber: aws.Int32(n),
				CopySource: &source, CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
			})
			if err != nil {
				return s.wrap(fmt.Sprintf("copy part %d of", n), key, err)
			}
			mu.Lock()
			u.parts = append(u.parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: res.CopyPartResult.ETag})
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		u.abort()
		return err
	}
	slices.SortFunc(u.parts, func(a, b types.CompletedPart) int { return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber)) })
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &full, UploadId: &u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
	})
	if err != nil {
		u.abort()
		return s.wrap("complete server-side copy of", key, err)
	}
	return nil
}

// copySource is "bucket/key" with each key segment URL-encoded, '+' and space
// included, as CopySource requires.
func copySource(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = strings.ReplaceAll(url.QueryEscape(seg), "+", "%20")
	}
	return bucket + "/" + strings.Join(segs, "/")
}
