package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
)

// leftover is what must be gone once a test's cleanups have run.
type leftover struct {
	what string
	pid  int // also the process group id
	dir  string
}

// TestServers starts every server in parallel, checks each answers a real query
// and that the standby and replicas replicate a write, then checks that cleanup
// left no process and no folder behind.
func TestServers(t *testing.T) {
	var left []leftover
	t.Run("run", func(t *testing.T) {
		pg, my, rd := &Postgres{}, &MariaDB{}, &Redis{}
		m1, m2, vg, prom := &MinIO{}, &MinIO{}, &VersityGW{}, &Prometheus{}
		began := time.Now()
		Start(t, pg, my, rd, m1, m2, vg, prom)
		t.Logf("all primaries ready in %s", time.Since(began).Round(time.Millisecond))

		began = time.Now()
		var (
			standby = &Postgres{primary: pg}
			myRep   = &MariaDB{primary: my}
			rdRep   = &Redis{primary: rd}
		)
		Start(t, standby, myRep, rdRep)
		t.Logf("standby and replicas ready in %s", time.Since(began).Round(time.Millisecond))

		left = append(left,
			leftover{"postgres", pg.Pid(), pg.Dir}, leftover{"postgres standby", standby.Pid(), standby.Dir},
			leftover{"mariadb", my.Pid(), my.Dir}, leftover{"mariadb replica", myRep.Pid(), myRep.Dir},
			leftover{"redis", rd.Pid(), rd.Dir}, leftover{"redis replica", rdRep.Pid(), rdRep.Dir},
			leftover{"minio 1", m1.Pid(), m1.Dir}, leftover{"minio 2", m2.Pid(), m2.Dir},
			leftover{"versitygw", vg.Pid(), vg.Dir}, leftover{"prometheus", prom.Pid(), prom.Dir},
		)

		t.Run("postgres standby replicates", func(t *testing.T) { checkPostgres(t, pg, standby) })
		t.Run("mariadb replica replicates", func(t *testing.T) { checkMariaDB(t, my, myRep) })
		t.Run("redis replica replicates", func(t *testing.T) { checkRedis(t, rd, rdRep) })
		t.Run("minio regions are separate", func(t *testing.T) { checkTwoRegions(t, m1, m2) })
		t.Run("versitygw lists buckets", func(t *testing.T) { checkBuckets(t, &vg.S3) })
		t.Run("prometheus answers a query", func(t *testing.T) { checkPrometheus(t, prom) })
	})
	for _, l := range left {
		if err := syscall.Kill(-l.pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s: process group %d still exists after cleanup (kill -0: %v)", l.what, l.pid, err)
		}
		if _, err := os.Stat(l.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: folder %s still exists after cleanup", l.what, l.dir)
		}
	}
	if len(left) != 10 {
		t.Errorf("checked %d servers for leftovers, want 10", len(left))
	}
}

// eventually retries check every 50ms for up to 30s.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func checkPostgres(t *testing.T, primary, standby *Postgres) {
	ctx := context.Background()
	p, err := pgx.Connect(ctx, primary.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var walLevel string
	if err := p.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil || walLevel != "replica" {
		t.Fatalf("wal_level = %q (%v), want replica", walLevel, err)
	}
	if _, err := p.Exec(ctx, "CREATE TABLE t (v text); INSERT INTO t VALUES ('from primary')"); err != nil {
		t.Fatal(err)
	}
	s, err := pgx.Connect(ctx, standby.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	var inRecovery bool
	if err := s.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("standby pg_is_in_recovery = %v (%v)", inRecovery, err)
	}
	eventually(t, "row on standby", func() error {
		var v string
		return s.QueryRow(ctx, "SELECT v FROM t").Scan(&v)
	})
}

func checkMariaDB(t *testing.T, primary, replica *MariaDB) {
	ctx := context.Background()
	p := primary.Open(t, "")
	var format string
	var gtidPos string
	if err := p.QueryRowContext(ctx, "SELECT @@binlog_format, @@gtid_binlog_pos").Scan(&format, &gtidPos); err != nil || format != "ROW" {
		t.Fatalf("binlog_format = %q (%v), want ROW", format, err)
	}
	if _, err := p.ExecContext(ctx, "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	if err := p.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&gtidPos); err != nil || gtidPos == "" {
		t.Fatalf("gtid_binlog_pos empty after writes (%v)", err)
	}
	r := replica.Open(t, "")
	eventually(t, "row on replica", func() error {
		var id int
		return r.QueryRowContext(ctx, "SELECT id FROM d.t").Scan(&id)
	})
}

func checkRedis(t *testing.T, primary, replica *Redis) {
	ctx := context.Background()
	if err := primary.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rc := replica.Client(t)
	eventually(t, "key on replica", func() error {
		v, err := rc.Get(ctx, "k").Result()
		if err == nil && v != "v" {
			return errors.New("wrong value " + v)
		}
		return err
	})
}

func checkBuckets(t *testing.T, s *S3) {
	ctx := context.Background()
	c, err := s.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatalf("ListBuckets on %s: %v", s.Endpoint, err)
	}
	for _, b := range out.Buckets {
		if aws.ToString(b.Name) == s.Bucket {
			return
		}
	}
	t.Fatalf("bucket %s not listed by %s", s.Bucket, s.Endpoint)
}

func checkTwoRegions(t *testing.T, a, b *MinIO) {
	checkBuckets(t, &a.S3)
	checkBuckets(t, &b.S3)
	ctx := context.Background()
	ca, err := a.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(a.Bucket), Key: aws.String("only-in-a"), Body: strings.NewReader("x")}); err != nil {
		t.Fatalf("put to region a: %v", err)
	}
	cb, err := b.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String("only-in-a")}); err == nil {
		t.Fatal("an object put to region a is visible in region b: the two MinIO servers share storage")
	}
}

func checkPrometheus(t *testing.T, p *Prometheus) {
	resp, err := http.Get(p.URL + "/api/v1/query?query=vector(7)")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string
		Data   struct {
			Result []struct{ Value []any }
		}
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" || len(r.Data.Result) != 1 || r.Data.Result[0].Value[1] != "7" {
		t.Fatalf("query vector(7): %s (%v)", body, err)
	}
	out, err := Promtool(t, "--version")
	if err != nil || !strings.Contains(out, "promtool") {
		t.Fatalf("promtool --version: %q %v", out, err)
	}
}

func TestMissingBinarySaysMakeDeps(t *testing.T) {
	_, err := findBinary("drkit-no-such-server")
	if err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("findBinary error = %v, want the make deps hint", err)
	}
}

func TestUnknownProviderIsAnError(t *testing.T) {
	t.Setenv("DRKIT_TEST_PROVIDER", "podman")
	if _, err := useDocker(); err == nil || !strings.Contains(err.Error(), "podman") {
		t.Fatalf("useDocker = %v, want an error naming the value", err)
	}
}
