package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// The docker provider (DRKIT_TEST_PROVIDER=docker) runs the same servers from
// container images through testcontainers-go, for developers' machines that have a
// Docker engine. CI here has none, so the local provider is what CI exercises; this
// one is kept small and shares the readiness checks of the local one.
//
// Covered: PostgreSQL, MariaDB, Redis, MinIO, versitygw and Prometheus primaries.
// Not yet covered: PostgreSQL standbys and MariaDB/Redis replicas (they need a
// container network); those fail with a clear error rather than skipping.

// Images used by the docker provider; majors match the Debian packages `make deps`
// installs so that both providers test the same server versions.
const (
	imagePostgres   = "postgres:15"
	imageMariaDB    = "mariadb:10.11"
	imageRedis      = "redis:7.0"
	imageMinIO      = "minio/minio:RELEASE.2025-09-07T16-13-09Z"
	imageVersityGW  = "versity/versitygw:v1.8.0"
	imagePrometheus = "prom/prometheus:v2.53.4"
)

var errNoDockerReplica = errors.New("standbys and replicas are not supported by DRKIT_TEST_PROVIDER=docker yet; run with the local provider (make deps)")

// dockerOr returns providerErr if the provider setting is invalid, else runs start.
func dockerOr(providerErr error, start func() error) error {
	if providerErr != nil {
		return providerErr
	}
	return start()
}

// container is one started container and the host port its service maps to.
type container struct {
	host string
	port int
}

// runContainer starts image with port exposed and waits for it to listen.
func runContainer(ctx context.Context, tb testing.TB, image, port string, env map[string]string, cmd []string, extra ...testcontainers.ContainerCustomizer) (container, error) {
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(port),
		testcontainers.WithEnv(env),
		testcontainers.WithWaitStrategyAndDeadline(startTimeout, wait.ForListeningPort(port)),
	}
	if len(cmd) > 0 {
		opts = append(opts, testcontainers.WithCmd(cmd...))
	}
	opts = append(opts, extra...)
	c, err := testcontainers.Run(ctx, image, opts...)
	testcontainers.CleanupContainer(tb, c)
	if err != nil {
		return container{}, fmt.Errorf("run %s: %w", image, err)
	}
	host, err := c.Host(ctx)
	if err != nil {
		return container{}, fmt.Errorf("host of %s: %w", image, err)
	}
	mapped, err := c.MappedPort(ctx, port)
	if err != nil {
		return container{}, fmt.Errorf("mapped port of %s: %w", image, err)
	}
	p, err := strconv.Atoi(mapped.Port())
	if err != nil {
		return container{}, fmt.Errorf("mapped port of %s: %w", image, err)
	}
	return container{host: host, port: p}, nil
}

// pollReady retries check until it succeeds or ctx ends.
func pollReady(ctx context.Context, what string, check func(context.Context) error) error {
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", what, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p *Postgres) startDocker(ctx context.Context, tb testing.TB) error {
	if p.primary != nil {
		return errNoDockerReplica
	}
	args := []string{"postgres"}
	for k, v := range p.Settings {
		args = append(args, "-c", k+"="+v)
	}
	args = append(args, "-c", "wal_level=replica", "-c", "max_wal_senders=10", "-c", "max_replication_slots=10")
	c, err := runContainer(ctx, tb, imagePostgres, "5432/tcp", map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"}, args)
	if err != nil {
		return err
	}
	p.Port = c.port
	return pollReady(ctx, "postgres", p.ping)
}

func (m *MariaDB) startDocker(ctx context.Context, tb testing.TB) error {
	if m.primary != nil {
		return errNoDockerReplica
	}
	if m.ServerID == 0 {
		m.ServerID = 1000 + serverIDs.Add(1)
	}
	args := append([]string{"--log-bin=mysql-bin", "--binlog-format=ROW", "--log-slave-updates=ON",
		"--server-id=" + strconv.FormatUint(uint64(m.ServerID), 10)}, m.Args...)
	c, err := runContainer(ctx, tb, imageMariaDB, "3306/tcp", map[string]string{"MARIADB_ALLOW_EMPTY_ROOT_PASSWORD": "1"}, args)
	if err != nil {
		return err
	}
	m.Port = c.port
	return pollReady(ctx, "mariadb", m.ping)
}

func (r *Redis) startDocker(ctx context.Context, tb testing.TB) error {
	if r.primary != nil {
		return errNoDockerReplica
	}
	args := []string{"redis-server", "--save", "", "--appendonly", "no"}
	if r.Password != "" {
		args = append(args, "--requirepass", r.Password, "--masterauth", r.Password)
	}
	c, err := runContainer(ctx, tb, imageRedis, "6379/tcp", nil, args)
	if err != nil {
		return err
	}
	r.Port = c.port
	return pollReady(ctx, "redis", r.ready)
}

func (m *MinIO) startDocker(ctx context.Context, tb testing.TB) error {
	if err := m.defaults(); err != nil {
		return err
	}
	c, err := runContainer(ctx, tb, imageMinIO, "9000/tcp",
		map[string]string{"MINIO_ROOT_USER": m.AccessKey, "MINIO_ROOT_PASSWORD": m.SecretKey}, []string{"server", "/data"})
	if err != nil {
		return err
	}
	m.Endpoint = "http://" + c.host + ":" + strconv.Itoa(c.port)
	return pollReady(ctx, "minio", m.makeBucket)
}

func (v *VersityGW) startDocker(ctx context.Context, tb testing.TB) error {
	if err := v.defaults(); err != nil {
		return err
	}
	c, err := runContainer(ctx, tb, imageVersityGW, "7070/tcp", nil,
		[]string{"--access", v.AccessKey, "--secret", v.SecretKey, "--region", v.Region, "posix", "--nometa", "/tmp"})
	if err != nil {
		return err
	}
	v.Endpoint = "http://" + c.host + ":" + strconv.Itoa(c.port)
	return pollReady(ctx, "versitygw", v.makeBucket)
}

func (p *Prometheus) startDocker(ctx context.Context, tb testing.TB) error {
	if p.Config == "" {
		p.Config = DefaultPrometheusConfig
	}
	cfg := testcontainers.ContainerFile{
		Reader:            strings.NewReader(p.Config),
		ContainerFilePath: "/etc/prometheus/prometheus.yml",
		FileMode:          0o644,
	}
	c, err := runContainer(ctx, tb, imagePrometheus, "9090/tcp", nil, nil, testcontainers.WithFiles(cfg))
	if err != nil {
		return err
	}
	p.URL = (&url.URL{Scheme: "http", Host: c.host + ":" + strconv.Itoa(c.port)}).String()
	return pollReady(ctx, "prometheus", func(ctx context.Context) error { return httpOK(ctx, p.URL+"/-/ready") })
}
