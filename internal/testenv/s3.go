package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// The root credentials of every S3 server testenv starts. Tests of code that reads
// credentials from the SDK's chain call UseS3Credentials.
const (
	S3AccessKey = "drkit-test"
	S3SecretKey = "drkit-test-secret"
)

// UseS3Credentials puts the test servers' credentials in the environment for the
// SDK's default chain, and turns off the EC2 metadata lookup so nothing is ever
// asked of an address beyond loopback. Call it from TestMain (it is process-wide).
func UseS3Credentials() {
	os.Setenv("AWS_ACCESS_KEY_ID", S3AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", S3SecretKey)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// S3 describes a running S3-compatible server with one bucket.
type S3 struct {
	// Bucket is created at start (option; default "drkit").
	Bucket string
	// TLS serves HTTPS with a certificate from a throwaway CA (option; MinIO only).
	TLS bool
	// CAFile is that CA's PEM file, for AWS_CA_BUNDLE; set by Start when TLS.
	CAFile string

	// Endpoint is the server's base URL (http://127.0.0.1:port); set by Start.
	Endpoint string
	// Region is the signing region.
	Region string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Dir is the server's folder; set by Start.
	Dir string

	proc *proc
	http *http.Client // trusts CAFile when TLS
}

// MinIO is a throwaway MinIO server (one per region in tests).
type MinIO struct{ S3 }

// VersityGW is a throwaway versitygw over a POSIX folder: a second, independent
// S3 implementation, so adapters are not tested against MinIO's quirks alone.
type VersityGW struct{ S3 }

// StartMinIO starts a MinIO server and returns it.
func StartMinIO(tb testing.TB) *MinIO {
	tb.Helper()
	m := &MinIO{}
	Start(tb, m)
	return m
}

// StartVersityGW starts a versitygw server and returns it.
func StartVersityGW(tb testing.TB) *VersityGW {
	tb.Helper()
	v := &VersityGW{}
	Start(tb, v)
	return v
}

// Client returns an S3 client for the server, loaded through the SDK's default
// chain (so AWS_CA_BUNDLE and friends apply as in production) with the server's
// static credentials.
func (s *S3) Client(ctx context.Context) (*s3.Client, error) {
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(s.Region),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")),
	}
	if s.CAFile != "" {
		ca, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read test CA: %w", err)
		}
		opts = append(opts, awsconfig.WithCustomCABundle(bytes.NewReader(ca)))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	}), nil
}

// StoreURL returns the s3:// store URL of prefix in the server's bucket, as a
// region's store would be configured.
func (s *S3) StoreURL(prefix string) string {
	q := url.Values{"endpoint": {s.Endpoint}, "region": {s.Region}, "path_style": {"true"}}
	return fmt.Sprintf("s3://%s/%s?%s", s.Bucket, prefix, q.Encode())
}

// Pid returns the server's process id.
func (s *S3) Pid() int { return s.proc.Pid() }

// Kill SIGKILLs the server.
func (s *S3) Kill() error { return s.proc.kill() }

func (s *S3) defaults() error {
	if s.Bucket == "" {
		s.Bucket = "drkit"
	}
	s.Region = "us-east-1"
	s.AccessKey, s.SecretKey = S3AccessKey, S3SecretKey
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
	return nil
}

// address is the server's host:port.
func (s *S3) address() string {
	u, _ := url.Parse(s.Endpoint)
	return u.Host
}

func (m *MinIO) start(ctx context.Context, tb testing.TB) error {
	if docker, err := useDocker(); err != nil || docker {
		return dockerOr(err, func() error { return m.startDocker(ctx, tb) })
	}
	bin, err := findBinary("minio")
	if err != nil {
		return err
	}
	if err := m.defaults(); err != nil {
		return err
	}
	if m.Dir, err = tempDir("minio", account{}); err != nil {
		return err
	}
	registerCleanup(tb, cleanup(&m.proc, m.Dir, syscall.SIGTERM))
	console, err := freePort()
	if err != nil {
		return err
	}
	env := []string{
		"MINIO_ROOT_USER=" + m.AccessKey, "MINIO_ROOT_PASSWORD=" + m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1",
	}
	args := []string{"server", filepath.Join(m.Dir, "data"), "--quiet", "--address", m.address(),
		"--console-address", "127.0.0.1:" + strconv.Itoa(console)}
	if m.TLS {
		certs := filepath.Join(m.Dir, "certs")
		if err := os.MkdirAll(certs, 0o700); err != nil {
			return err
		}
		pool, err := selfSignedCA(certs)
		if err != nil {
			return fmt.Errorf("make TLS certificates: %w", err)
		}
		m.CAFile, m.http = filepath.Join(certs, "ca.pem"), tlsClient(pool)
		m.Endpoint = "https://" + m.address()
		args = append(args, "--certs-dir", certs)
	}
	m.proc, err = startProc("minio", account{}, filepath.Join(m.Dir, "minio.log"), env, bin, args...)
	if err != nil {
		return err
	}
	if err := m.proc.waitReady(ctx, func(ctx context.Context) error { return m.httpOK(ctx, m.Endpoint+"/minio/health/ready") }); err != nil {
		return err
	}
	return m.proc.waitReady(ctx, m.makeBucket)
}

func (v *VersityGW) start(ctx context.Context, tb testing.TB) error {
	if docker, err := useDocker(); err != nil || docker {
		return dockerOr(err, func() error { return v.startDocker(ctx, tb) })
	}
	bin, err := findBinary("versitygw")
	if err != nil {
		return err
	}
	if err := v.defaults(); err != nil {
		return err
	}
	if v.Dir, err = tempDir("versitygw", account{}); err != nil {
		return err
	}
	registerCleanup(tb, cleanup(&v.proc, v.Dir, syscall.SIGTERM))
	data, meta := filepath.Join(v.Dir, "data"), filepath.Join(v.Dir, "meta")
	for _, d := range []string{data, meta} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("make versitygw folder: %w", err)
		}
	}
	// Metadata goes to a sidecar folder so the test does not depend on xattr support.
	v.proc, err = startProc("versitygw", account{}, filepath.Join(v.Dir, "versitygw.log"), nil, bin,
		"--access", v.AccessKey, "--secret", v.SecretKey, "--region", v.Region,
		"--port", v.address(), "--quiet",
		"posix", "--sidecar", meta, data)
	if err != nil {
		return err
	}
	return v.proc.waitReady(ctx, v.makeBucket)
}

// makeBucket creates the bucket; an existing one owned by us is fine.
func (s *S3) makeBucket(ctx context.Context) error {
	c, err := s.Client(ctx)
	if err != nil {
		return err
	}
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", s.Bucket, err)
	}
	return nil
}

func (s *S3) httpOK(ctx context.Context, u string) error {
	c := s.http
	if c == nil {
		c = http.DefaultClient
	}
	return httpGetOK(ctx, c, u)
}

func httpOK(ctx context.Context, u string) error { return httpGetOK(ctx, http.DefaultClient, u) }

func httpGetOK(ctx context.Context, c *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}
