package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWithPassword(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("s3cr'et:@/\n"), 0o600)
	t.Setenv("MYSQL_PWD", "from-env")
	t.Setenv("REDISCLI_AUTH", "redis-env")
	cases := []struct{ engine, dsn, file, want string }{
		{"mysql", "root@tcp(127.0.0.1:3306)/", "", "root:from-env@tcp(127.0.0.1:3306)/"},
		{"mysql", "root@tcp(127.0.0.1:3306)/", file, "root:s3cr'et:@/@tcp(127.0.0.1:3306)/"},
		{"mysql", "root:given@tcp(127.0.0.1:3306)/", "", "root:given@tcp(127.0.0.1:3306)/"},
		{"postgres", "postgres://repl@10.0.0.5:5432/postgres", "", "postgres://repl@10.0.0.5:5432/postgres"}, // pgx reads PGPASSWORD
		{"postgres", "postgres://repl@10.0.0.5:5432/postgres", file, "postgres://repl:s3cr%27et%3A%40%2F@10.0.0.5:5432/postgres"},
		{"postgres", "host=10.0.0.5 user=repl", file, `host=10.0.0.5 user=repl password='s3cr\'et:@/'`},
		{"redis", "redis://10.0.0.7:6379/0", "", "redis://:redis-env@10.0.0.7:6379/0"},
	}
	for _, c := range cases {
		got, err := withPassword(c.engine, c.dsn, c.file)
		if err != nil || got != c.want {
			t.Errorf("withPassword(%s, %q, %q) = %q, %v; want %q", c.engine, c.dsn, c.file, got, err, c.want)
		}
	}
	if _, err := withPassword("mysql", "root@tcp(h:3306)/", "/nonexistent"); err == nil || exitCode(err) != exitUsage {
		t.Errorf("a missing password file: %v, want a usage error", err)
	}
}
