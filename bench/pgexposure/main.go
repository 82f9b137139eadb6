// Command pgexposure measures drkit's exposure window: for commits made while
// load runs, the time from the commit's acknowledgement to the moment its WAL is
// durable in every region of the config. It prints p50, p99 and max.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/all"
)

type commit struct {
	lsn pgwal.LSN
	at  time.Time
}

func main() {
	cfgPath := flag.String("config", "drkit.yaml", "drkit config")
	dur := flag.Duration("duration", 20*time.Second, "how long to commit")
	flag.Parse()
	if err := run(*cfgPath, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "pgexposure:", err)
		os.Exit(1)
	}
}

func run(cfgPath string, dur time.Duration) error {
	ctx := context.Background()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	cl := cfg.Clusters[0]
	var cats []*pgwal.Catalog
	for _, name := range cl.ShipTo {
		r, err := regions.Open(ctx, cfg, name, storage.RegionOptions{})
		if err != nil {
			return err
		}
		cats = append(cats, &pgwal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name})
	}
	conn, err := pgx.Connect(ctx, cl.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS exposure_probe (at timestamptz)"); err != nil {
		return err
	}
	var mu sync.Mutex
	var commits []commit
	var exposures []time.Duration
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // watch the regions
		for {
			low := durableEverywhere(ctx, cats)
			now := time.Now()
			mu.Lock()
			for len(commits) > 0 && commits[0].lsn <= low {
				exposures = append(exposures, now.Sub(commits[0].at))
				commits = commits[1:]
			}
			pending := len(commits)
			mu.Unlock()
			select {
			case <-done:
				if pending == 0 {
					return
				}
			default:
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		var s string
		if err := conn.QueryRow(ctx, "INSERT INTO exposure_probe VALUES (now()) RETURNING pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
			return err
		}
		at := time.Now()
		l, _ := pgwal.ParseLSN(s)
		mu.Lock()
		commits = append(commits, commit{l, at})
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	slices.Sort(exposures)
	pct := func(p float64) time.Duration { return exposures[int(p*float64(len(exposures)-1))] }
	fmt.Printf("exposure over %d commits: p50 %s  p99 %s  max %s\n", len(exposures),
		pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), exposures[len(exposures)-1].Round(time.Millisecond))
	return nil
}

// durableEverywhere is the lowest durable WAL end across the regions.
func durableEverywhere(ctx context.Context, cats []*pgwal.Catalog) pgwal.LSN {
	var low pgwal.LSN
	for i, c := range cats {
		objs, err := c.List(ctx, 16<<20)
		if err != nil {
			return 0
		}
		end, _ := pgwal.DurableEnd(objs, 1, 16<<20)
		if i == 0 || end < low {
			low = end
		}
	}
	return low
}
