package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Redis is a throwaway Redis server without persistence, or a replica of another.
type Redis struct {
	// Password, if set, is required of clients (requirepass) and used by a
	// replica toward its primary (masterauth) (option).
	Password string

	// Port is the TCP port on 127.0.0.1; set by Start.
	Port int
	// Dir is the server's folder; set by Start.
	Dir string

	primary *Redis
	proc    *proc
}

// StartRedis starts a Redis server and returns it.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	r := &Redis{}
	Start(tb, r)
	return r
}

// StartReplica starts a new server that replicates from r and returns it once the
// link to r is up.
func (r *Redis) StartReplica(tb testing.TB) *Redis {
	tb.Helper()
	rep := &Redis{primary: r, Password: r.Password}
	Start(tb, rep)
	return rep
}

// URL returns a redis:// URL of the server, with its password if any.
func (r *Redis) URL() string {
	if r.Password != "" {
		return fmt.Sprintf("redis://:%s@%s", r.Password, r.Addr())
	}
	return "redis://" + r.Addr()
}

// Addr returns host:port.
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// Client returns a client for r, closed when the test ends.
func (r *Redis) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password})
	tb.Cleanup(func() { c.Close() })
	return c
}

// Pid returns the server's process id.
func (r *Redis) Pid() int { return r.proc.Pid() }

// Kill SIGKILLs the server.
func (r *Redis) Kill() error { return r.proc.kill() }

func (r *Redis) start(ctx context.Context, tb testing.TB) error {
	if docker, err := useDocker(); err != nil || docker {
		return dockerOr(err, func() error { return r.startDocker(ctx, tb) })
	}
	bin, err := findBinary("redis-server")
	if err != nil {
		return err
	}
	if r.Dir, err = tempDir("redis", account{}); err != nil {
		return err
	}
	registerCleanup(tb, cleanup(&r.proc, r.Dir, syscall.SIGTERM))
	if r.Port, err = freePort(); err != nil {
		return err
	}
	args := []string{
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.Dir, "--daemonize", "no",
		// A replica's first full sync otherwise waits 5s for more replicas to join.
		"--repl-diskless-sync-delay", "0",
	}
	if r.Password != "" {
		args = append(args, "--requirepass", r.Password, "--masterauth", r.Password)
	}
	if r.primary != nil {
		args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(r.primary.Port))
	}
	if r.proc, err = startProc("redis-server", account{}, filepath.Join(r.Dir, "redis.log"), nil, bin, args...); err != nil {
		return err
	}
	return r.proc.waitReady(ctx, r.ready)
}

// ready answers PING; a replica must also have its link to the primary up.
func (r *Redis) ready(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		return err
	}
	if r.primary == nil {
		return nil
	}
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "master_link_status:up") {
		return fmt.Errorf("replica link not up yet")
	}
	return nil
}
