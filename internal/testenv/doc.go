// Package testenv starts real, throwaway servers for tests: PostgreSQL (primary and
// streaming standby), MariaDB (binlog in ROW format, GTID, a server_id; replicas),
// Redis (replicas), MinIO (one per region), versitygw (a second S3 implementation)
// and Prometheus, plus a way to run promtool.
//
// By default servers run from binaries installed on the machine (`make deps`), on
// free loopback ports, in temporary folders; each is stopped and its folder removed
// by t.Cleanup, including when the test fails. Children run in their own process
// group with a parent-death signal, so even a test binary killed by its timeout
// leaves no server behind. PostgreSQL refuses to run as root, so when tests run as
// root it runs as the postgres user, and MariaDB as mysql.
//
// DRKIT_TEST_PROVIDER=docker selects a testcontainers-go provider instead, for
// developers' machines that have a Docker engine (see docker.go for what it covers).
//
// A missing binary fails the test with a hint to run `make deps`; it never skips,
// because a skipped real-server test is a test that silently does not run in CI.
//
// Imported by tests only.
package testenv
