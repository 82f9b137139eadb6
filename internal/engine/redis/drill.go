package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/sandbox"
	rdsnap "github.com/drkit/drkit/snapshots/redis"
)

var _ engine.Driller = Engine{}

// Sandbox implements engine.Driller: a redis-server on a free port with
// its files in dir, no persistence, that the restore fills (--target-dsn).
func (Engine) Sandbox(ctx context.Context, env engine.Env, dir string, record func(int) error) (engine.Sandbox, error) {
	bin, err := sandbox.Find("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis drill sandbox: %w (install redis-server)", err)
	}
	port, err := sandbox.FreePort()
	if err != nil {
		return nil, err
	}
	p, err := sandbox.Start(dir, "redis-server", record, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--save", "", "--appendonly", "no")
	if err != nil {
		return nil, err
	}
	s := &redisSandbox{proc: p, key: heartbeatKey(env.Cluster),
		c: goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1})}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.WaitReady(wctx, "redis-server", dir, func(ctx context.Context) error { return s.c.Ping(ctx).Err() }); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

type redisSandbox struct {
	proc *sandbox.Proc
	c    *goredis.Client
	key  string
	dsn  string // a drill target's; else the started server's
}

func (s *redisSandbox) RestoreFlags() map[string]string {
	if s.dsn != "" {
		return map[string]string{"target-dsn": s.dsn}
	}
	return map[string]string{"target-dsn": "redis://" + s.c.Options().Addr + "/0"}
}

// Start: the restore filled a running server.
func (s *redisSandbox) Start(context.Context) error { return nil }

// Newest reads the heartbeat key drd writes (unix microseconds).
func (s *redisSandbox) Newest(ctx context.Context) (time.Time, string, bool, error) {
	v, err := s.c.Get(ctx, s.key).Int64()
	if errors.Is(err, goredis.Nil) {
		return time.Time{}, "", false, nil
	}
	if err != nil {
		return time.Time{}, "", false, fmt.Errorf("read heartbeat key %s: %w", s.key, err)
	}
	return time.UnixMicro(v), "heartbeat key " + s.key, true, nil
}

func (s *redisSandbox) Close() error {
	_ = s.c.Close()
	s.proc.Stop()
	return nil
}

var _ engine.TargetDriller = Engine{}

// DrillTarget implements engine.TargetDriller: the Redis at dsn
// (redis://host:port), which must not be the cluster's primary or a
// replica. The restore's replay listener is on 127.0.0.1: the target runs on
// drctl's host.
func (Engine) DrillTarget(ctx context.Context, env engine.Env, dsn string) (engine.DrillTarget, error) {
	if err := engine.RefuseProduction(env.Cluster, dsn, redisAddr); err != nil {
		return nil, err
	}
	opt, err := goredis.ParseURL(dsn)
	if err != nil {
		return nil, fmt.Errorf("drill.target: %w", err)
	}
	opt.MaxRetries = -1
	s := &redisSandbox{c: goredis.NewClient(opt), key: heartbeatKey(env.Cluster), dsn: dsn}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.c.Ping(pctx).Err(); err != nil {
		s.c.Close()
		return nil, fmt.Errorf("drill.target: %w", err)
	}
	return s, nil
}

func redisAddr(dsn string) (string, error) {
	opt, err := goredis.ParseURL(dsn)
	if err != nil {
		return "", err
	}
	return opt.Addr, nil
}

// CheckEmpty implements engine.DrillTarget.
func (s *redisSandbox) CheckEmpty(ctx context.Context) error { return rdsnap.CheckEmpty(ctx, s.c) }

// Clear implements engine.DrillTarget: FLUSHALL.
func (s *redisSandbox) Clear(ctx context.Context) error {
	if err := s.c.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("drill target: FLUSHALL: %w", err)
	}
	return nil
}
