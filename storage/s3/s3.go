package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/drkit/drkit/storage"
)

func init() {
	storage.RegisterCheck("s3", checkURL)
	storage.Register("s3", func(ctx context.Context, u *url.URL, opts storage.Options) (storage.Store, error) {
		return Open(ctx, u, opts)
	})
}

// checkURL wants a bucket and, when an endpoint is given, an http(s) URL.
func checkURL(u *url.URL) error {
	if u.Host == "" {
		return errors.New("an s3 store needs a bucket, as in s3://bucket/prefix?region=eu-west-1")
	}
	if ep := u.Query().Get("endpoint"); ep != "" {
		if e, err := url.Parse(ep); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return fmt.Errorf("endpoint %q must be an http:// or https:// URL", ep)
		}
	}
	return nil
}

// Store keeps objects under a prefix of one S3 bucket.
type Store struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or "some/prefix/" (with the trailing slash)
	endpoint string
	region   string
	crc      bool // send CRC32C part checksums (when_supported), else Content-MD5
	opts     storage.Options
	// credID identifies the credentials, to decide whether server-side copy
	// between two stores is possible.
	credID string
}

var (
	_ storage.Store            = (*Store)(nil)
	_ storage.ExclusiveCreator = (*Store)(nil)
)

// Open opens the store described by u (see the package doc for its parameters).
func Open(ctx context.Context, u *url.URL, opts storage.Options) (*Store, error) {
	opts = opts.WithDefaults()
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "path_style", "checksum", "profile":
		default:
			return nil, fmt.Errorf("s3 store URL: unknown parameter %q; allowed: endpoint, region, path_style, checksum, profile", k)
		}
	}
	if u.Host == "" {
		return nil, fmt.Errorf("s3 store URL %q has no bucket: use s3://bucket/prefix", u.Redacted())
	}
	s := &Store{bucket: u.Host, endpoint: q.Get("endpoint"), region: q.Get("region"), opts: opts}
	if p := strings.Trim(u.Path, "/"); p != "" {
		s.prefix = p + "/"
	}
	pathStyle, err := parseBool(q, "path_style", s.endpoint != "")
	if err != nil {
		return nil, err
	}
	switch q.Get("checksum") {
	case "":
		s.crc = s.endpoint == "" // AWS itself supports CRC32C everywhere
	case "when_supported":
		s.crc = true
	case "when_required":
		s.crc = false
	default:
		return nil, fmt.Errorf("s3 store URL: checksum=%q is not known; use when_required or when_supported", q.Get("checksum"))
	}
	if s.client, err = s.newClient(ctx, q.Get("profile"), pathStyle); err != nil {
		return nil, err
	}
	if creds, err := s.client.Options().Credentials.Retrieve(ctx); err == nil {
		s.credID = creds.AccessKeyID
	}
	return s, nil
}

func (s *Store) newClient(ctx context.Context, profile string, pathStyle bool) (*s3.Client, error) {
	calc, valid := aws.RequestChecksumCalculationWhenRequired, aws.ResponseChecksumValidationWhenRequired
	if s.crc {
		calc, valid = aws.RequestChecksumCalculationWhenSupported, aws.ResponseChecksumValidationWhenSupported
	}
	// A BuildableClient keeps AWS_CA_BUNDLE working: the SDK adds the bundle to it.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = max(16, 2*s.opts.Concurrency)
		t.ResponseHeaderTimeout = 2 * time.Minute
	}).WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second })
	loadOpts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(httpClient),
		awsconfig.WithRequestChecksumCalculation(calc),
		awsconfig.WithResponseChecksumValidation(valid),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 10
				o.MaxBackoff = 20 * time.Second
				o.RateLimiter = ratelimit.None
				o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(permanentTLS)}, o.Retryables...)
			})
		}),
	}
	if s.region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(s.region))
	}
	if profile != "" {
		loadOpts = append(loadOpts, awsconfig.WithSharedConfigProfile(profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration for %s: %w", s, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	s.region = cfg.Region
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if s.endpoint != "" {
			o.BaseEndpoint = aws.String(s.endpoint)
		}
		o.UsePathStyle = pathStyle
	}), nil
}

// permanentTLS stops retries of certificate failures: no retry fixes a CA that is
// not trusted or a name that does not match, and the operator should hear at once.
func permanentTLS(err error) aws.Ternary {
	var verr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &verr) || errors.As(err, &hostErr) || errors.As(err, &authErr) || errors.As(err, &invalid) {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

func parseBool(q url.Values, name string, def bool) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("s3 store URL: %s=%q is not true or false", name, v)
	}
	return b, nil
}

// String implements storage.Store.
func (s *Store) String() string {
	out := "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
	if s.endpoint != "" {
		out += " at " + s.endpoint
	}
	return out
}

func (s *Store) fullKey(key string) (string, error) {
	if err := storage.CheckKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Put implements storage.Store. Objects of known size up to the threshold go in
// one PutObject; others through a multipart upload (see multipart.go).
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	full, err := s.fullKey(key)
	if err != nil {
		return err
	}
	size := storage.SizeOf(r)
	rs, seekable := r.(io.ReadSeeker)
	switch {
	case seekable && size >= 0 && size <= s.opts.Threshold:
		return s.putObject(ctx, key, full, rs, size)
	case size > s.opts.Threshold:
		return s.multipart(ctx, key, full, r, size, nil)
	}
	// Read the first part: a stream that ends within it is stored in one request;
	// otherwise the buffer becomes part 1 of the multipart upload.
	first := make([]byte, s.opts.PartSize)
	n, err := io.ReadFull(r, first)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return s.putObject(ctx, key, full, bytes.NewReader(first[:n]), int64(n))
	case err != nil:
		return fmt.Errorf("put %s: read source: %w", key, err)
	}
	return s.multipart(ctx, key, full, r, size, first)
}

func (s *Store) putObject(ctx context.Context, key, full string, body io.ReadSeeker, size int64) error {
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: &full, Body: body, ContentLength: aws.Int64(size)}
	if br, ok := body.(*bytes.Reader); ok && !s.crc {
		in.ContentMD5 = aws.String(md5Base64(br))
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return s.wrap("put", key, err)
	}
	return nil
}

// PutIfAbsent implements storage.ExclusiveCreator with a conditional
// PutObject (If-None-Match: *, which S3 and MinIO honour). r is read into
// memory: exclusive objects are small records (leases), never backups. A
// retried request whose first attempt succeeded also answers 412; the caller
// (a lease) tells the two apart by reading its own record back.
func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader) error {
	full, err := s.fullKey(key)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("put %s: read source: %w", key, err)
	}
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: &full, Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))), IfNoneMatch: aws.String("*")}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		if isPreconditionFailed(err) {
			return fmt.Errorf("%s: %w", key, storage.ErrExists)
		}
		return s.wrap("put", key, err)
	}
	return nil
}

func isPreconditionFailed(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "PreconditionFailed" || apiErr.ErrorCode() == "ConditionalRequestConflict") {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict)
}

// md5Base64 returns the Content-MD5 of a bytes.Reader's whole content.
func md5Base64(br *bytes.Reader) string {
	h := md5.New()
	_, _ = br.Seek(0, io.SeekStart)
	_, _ = io.Copy(h, br)
	_, _ = br.Seek(0, io.SeekStart)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// Get implements storage.Store.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, offset)
	}
	if length == 0 {
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &full}
	if offset > 0 || length > 0 {
		rng := fmt.Sprintf("bytes=%d-", offset)
		if length > 0 {
			rng += strconv.FormatInt(offset+length-1, 10)
		}
		in.Range = &rng
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if isInvalidRange(err) {
			// S3 answers 416 for offset == size; the contract says: no bytes.
			if info, serr := s.Stat(ctx, key); serr == nil && info.Size == offset {
				return io.NopCloser(strings.NewReader("")), nil
			}
			return nil, fmt.Errorf("get %s: offset %d is outside the object", key, offset)
		}
		return nil, s.wrap("get", key, err)
	}
	return out.Body, nil
}

// Stat implements storage.Store.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &full})
	if err != nil {
		return storage.ObjectInfo{}, s.wrap("stat", key, err)
	}
	return storage.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified), ETag: aws.ToString(out.ETag)}, nil
}

// List implements storage.Store; S3 returns keys in UTF-8 byte order.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[storage.ObjectInfo, error] {
	return func(yield func(storage.ObjectInfo, error) bool) {
		p := s.prefix + prefix
		pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &p})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(storage.ObjectInfo{}, s.wrap("list", prefix, err))
				return
			}
			for _, o := range page.Contents {
				info := storage.ObjectInfo{
					Key:     strings.TrimPrefix(aws.ToString(o.Key), s.prefix),
					Size:    aws.ToInt64(o.Size),
					ModTime: aws.ToTime(o.LastModified),
					ETag:    aws.ToString(o.ETag),
				}
				if !yield(info, nil) {
					return
				}
			}
		}
	}
}

// deleteBatch is S3's limit of keys per DeleteObjects request.
const deleteBatch = 1000

// Delete implements storage.Store with DeleteObjects, up to 1,000 keys a request.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	var errs []error
	for start := 0; start < len(keys); start += deleteBatch {
		batch := keys[start:min(start+deleteBatch, len(keys))]
		ids := make([]types.ObjectIdentifier, 0, len(batch))
		for _, k := range batch {
			full, err := s.fullKey(k)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ids = append(ids, types.ObjectIdentifier{Key: aws.String(full)})
		}
		if len(ids) == 0 {
			continue
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			errs = append(errs, s.wrap("delete", batch[0], err))
			continue
		}
		for _, e := range out.Errors {
			errs = append(errs, fmt.Errorf("delete %s from %s: %s: %s", strings.TrimPrefix(aws.ToString(e.Key), s.prefix), s, aws.ToString(e.Code), aws.ToString(e.Message)))
		}
	}
	return errors.Join(errs...)
}

// wrap turns an SDK error into one that names the operation, key and store, maps
// missing objects to storage.ErrNotFound, and says what to do for the errors an
// operator can fix.
func (s *Store) wrap(op, key string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%s: %w", key, storage.ErrNotFound)
		case "NoSuchBucket":
			return fmt.Errorf("%s %s: bucket %q does not exist at %s: create it or fix the region's store URL: %w", op, key, s.bucket, s.String(), err)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken":
			return fmt.Errorf("%s %s in %s: the credentials were refused (%s): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile, or the bucket policy: %w", op, key, s, apiErr.ErrorCode(), err)
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && op != "list" {
		return fmt.Errorf("%s: %w", key, storage.ErrNotFound)
	}
	return fmt.Errorf("%s %s in %s: %w", op, key, s, err)
}

func isInvalidRange(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidRange" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable
}
