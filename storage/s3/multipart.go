package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/drkit/drkit/storage"
)

// maxPartSize is S3's largest part.
const maxPartSize = 5 << 30

// plan decides part sizes so that no object needs more than storage.MaxParts.
type plan struct {
	base  int64 // size of the first part
	total int64 // the object's size if known, else -1
}

func newPlan(opts storage.Options, total int64) plan {
	base := opts.PartSize
	if total > 0 {
		need := (total + storage.MaxParts - 1) / storage.MaxParts
		need = (need + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB
		base = max(base, need)
	}
	return plan{base: min(base, maxPartSize), total: total}
}

// partSize is the size of part n (from 1). With a known size every part but the
// last has the same size; for a stream of unknown length the size doubles every
// 1,000 parts (16 MiB parts reach 16 TiB in 10,000).
func (p plan) partSize(n int32) int64 {
	if p.total >= 0 {
		return p.base
	}
	return min(p.base<<((n-1)/1000), maxPartSize)
}

// upload is one multipart upload in progress.
type upload struct {
	s        *Store
	key      string // the store key, for messages
	full     string // the bucket key
	id       string
	plan     plan
	state    *uploadState
	existing map[int32]types.Part // parts the server holds, when resuming

	mu    sync.Mutex
	parts []types.CompletedPart
	sent  int64 // bytes read from the source
}

// multipart uploads r (total bytes, or -1 if unknown) to full in parallel parts.
// head, if set, is part 1, already read from r by the caller. Memory is bounded by
// (Concurrency+1) part buffers, whatever the object's size.
func (s *Store) multipart(ctx context.Context, key, full string, r io.Reader, total int64, head []byte) error {
	u := &upload{s: s, key: key, full: full, plan: newPlan(s.opts, total)}
	if head != nil && int64(len(head)) != u.plan.partSize(1) {
		r, head = io.MultiReader(bytes.NewReader(head), r), nil // not part-aligned: re-read it
	}
	if err := u.begin(ctx); err != nil {
		return err
	}
	err := u.sendParts(ctx, r, head)
	if err == nil {
		err = u.complete(ctx)
	}
	if err == nil {
		u.state.remove()
		return nil
	}
	if ctx.Err() != nil {
		// Cancelled (drd stopping): keep the upload and its state so that the next
		// run resumes it; the sweep removes it if nobody does.
		return fmt.Errorf("put %s: %w (upload %s kept for resuming)", key, err, u.id)
	}
	u.abort()
	return err
}

// begin resumes the upload recorded in the state folder, or creates a new one.
func (u *upload) begin(ctx context.Context) error {
	st, stale := u.s.loadState(u.full, u.plan)
	if stale != "" {
		u.id = stale
		u.abort()
		u.id = ""
	}
	if st != nil {
		existing, err := u.s.listParts(ctx, u.full, st.header.UploadID)
		if err == nil {
			u.id, u.state, u.existing = st.header.UploadID, st, existing
			u.s.opts.Log.Info("resuming upload", "store", u.s.String(), "key", u.key, "upload_id", u.id, "parts_stored", len(existing))
			return nil
		}
		if !isNoSuchUpload(err) {
			return u.s.wrap("resume upload of", u.key, err)
		}
		st.remove() // the server forgot it (aborted or swept): start over
	}
	in := &s3.CreateMultipartUploadInput{Bucket: &u.s.bucket, Key: &u.full}
	if u.s.crc {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	}
	out, err := u.s.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return u.s.wrap("start upload of", u.key, err)
	}
	u.id = aws.ToString(out.UploadId)
	u.state, err = u.s.newState(u.full, u.id, u.plan)
	return err
}

// sendParts reads r part by part and uploads parts in parallel; parts a resumed
// upload already holds are read and checked against their recorded checksum, not
// sent again.
func (u *upload) sendParts(ctx context.Context, r io.Reader, head []byte) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(u.s.opts.Concurrency)
	pool := make(chan []byte, u.s.opts.Concurrency+1)
	getBuf := func(size int64) []byte {
		select {
		case b := <-pool:
			if int64(cap(b)) >= size {
				return b[:size]
			}
		default:
		}
		return make([]byte, size)
	}
	var readErr error
	for n := int32(1); gctx.Err() == nil; n++ {
		if n > storage.MaxParts {
			readErr = fmt.Errorf("put %s: more than %d parts: the object is too large for its part size", u.key, storage.MaxParts)
			break
		}
		var (
			buf []byte
			m   int
			err error
		)
		if n == 1 && head != nil {
			buf, m = head, len(head)
		} else {
			buf = getBuf(u.plan.partSize(n))
			m, err = io.ReadFull(r, buf)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		last := errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !last {
			readErr = fmt.Errorf("put %s: read source: %w", u.key, err)
			break
		}
		data := buf[:m]
		u.mu.Lock()
		u.sent += int64(m)
		u.mu.Unlock()
		sum := u.s.partChecksum(data)
		if u.alreadyStored(n, sum, int64(m)) {
			pool <- buf
		} else {
			g.Go(func() error {
				defer func() { pool <- buf }()
				return u.sendPart(gctx, n, data, sum)
			})
		}
		if last {
			break
		}
	}
	err := g.Wait()
	if readErr != nil {
		return readErr
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// alreadyStored reports whether a resumed upload holds part n with these bytes,
// and if so records it as done.
func (u *upload) alreadyStored(n int32, sum string, size int64) bool {
	if u.existing == nil {
		return false
	}
	rec, ok := u.state.parts[n]
	srv, onServer := u.existing[n]
	if !ok || !onServer || rec.Sum != sum || rec.Size != size || aws.ToInt64(srv.Size) != size || aws.ToString(srv.ETag) != rec.ETag {
		return false
	}
	u.done(types.CompletedPart{PartNumber: aws.Int32(n), ETag: srv.ETag, ChecksumCRC32C: u.crcOf(sum)}, size, true)
	return true
}

func (u *upload) sendPart(ctx context.Context, n int32, data []byte, sum string) error {
	in := &s3.UploadPartInput{
		Bucket: &u.s.bucket, Key: &u.full, UploadId: &u.id, PartNumber: aws.Int32(n),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	}
	if u.s.crc {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
		in.ChecksumCRC32C = aws.String(sum)
	} else {
		in.ContentMD5 = aws.String(sum)
	}
	out, err := u.s.client.UploadPart(ctx, in, u.s.unsignedWhenGuarded)
	if err != nil {
		return u.s.wrap(fmt.Sprintf("upload part %d of", n), u.key, err)
	}
	if got := aws.ToString(out.ChecksumCRC32C); u.s.crc && got != "" && got != sum {
		return fmt.Errorf("upload part %d of %s: the server computed CRC32C %s, we sent %s", n, u.key, got, sum)
	}
	etag := aws.ToString(out.ETag)
	if err := u.state.add(statePart{N: n, ETag: etag, Sum: sum, Size: int64(len(data))}); err != nil {
		return err
	}
	u.done(types.CompletedPart{PartNumber: aws.Int32(n), ETag: aws.String(etag), ChecksumCRC32C: u.crcOf(sum)}, int64(len(data)), false)
	return nil
}

func (u *upload) done(p types.CompletedPart, size int64, resumed bool) {
	u.mu.Lock()
	u.parts = append(u.parts, p)
	u.mu.Unlock()
	if u.s.opts.OnPart != nil {
		u.s.opts.OnPart(storage.PartEvent{Key: u.key, Number: aws.ToInt32(p.PartNumber), Size: size, Resumed: resumed})
	}
}

func (u *upload) crcOf(sum string) *string {
	if u.s.crc {
		return aws.String(sum)
	}
	return nil
}

// complete assembles the parts and checks the object's size against what was read.
func (u *upload) complete(ctx context.Context) error {
	slices.SortFunc(u.parts, func(a, b types.CompletedPart) int { return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber)) })
	_, err := u.s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &u.s.bucket, Key: &u.full, UploadId: &u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
	})
	if err != nil {
		return u.s.wrap("complete upload of", u.key, err)
	}
	info, err := u.s.Stat(ctx, u.key)
	if err != nil {
		return err
	}
	if info.Size != u.sent {
		return fmt.Errorf("put %s: stored object has %d bytes, the source had %d", u.key, info.Size, u.sent)
	}
	return nil
}

// abort cancels the upload on the server (its parts are deleted) and forgets it.
func (u *upload) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := u.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.s.bucket, Key: &u.full, UploadId: &u.id})
	if err != nil && !isNoSuchUpload(err) {
		u.s.opts.Log.Warn("abort upload failed; `drctl storage sweep` will remove it", "store", u.s.String(), "key", u.key, "upload_id", u.id, "err", err)
	}
	u.state.remove()
}

// unsignedWhenGuarded drops SigV4's SHA-256 of a part's payload (over plain
// http the SDK hashes every byte for the signature) when something else
// guards the bytes: TLS, or the part's Content-MD5, a signed header the
// server checks, which an attacker on the path cannot match with other
// bytes. A CRC32C over plain http can be matched, so the payload stays
// signed there.
func (s *Store) unsignedWhenGuarded(o *s3.Options) {
	if s.crc && strings.HasPrefix(s.endpoint, "http://") {
		return
	}
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// partChecksum is the base64 CRC32C (when_supported) or MD5 of a part.
func (s *Store) partChecksum(data []byte) string {
	if s.crc {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
		return base64.StdEncoding.EncodeToString(b[:])
	}
	sum := md5.Sum(data)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// listParts returns the parts the server holds for an upload.
func (s *Store) listParts(ctx context.Context, full, id string) (map[int32]types.Part, error) {
	parts := map[int32]types.Part{}
	pages := s3.NewListPartsPaginator(s.client, &s3.ListPartsInput{Bucket: &s.bucket, Key: &full, UploadId: &id})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, p := range page.Parts {
			parts[aws.ToInt32(p.PartNumber)] = p
		}
	}
	return parts, nil
}

func isNoSuchUpload(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchUpload"
}
