package redis

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drkit/drkit/internal/engine/enginetest"
	"github.com/drkit/drkit/internal/testenv"
)

// The engine conformance suite on a real redis-server: drd's capture of the
// replication stream, RDB backups, restores into fresh servers (drctl
// serving them as their primary), verify.
func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Harness{
		Engine: Name,
		Start: func(t *testing.T) (string, string) {
			return testenv.StartRedis(t).URL(), ""
		},
		Write: func(t *testing.T, dsn string, v int) {
			opt, err := goredis.ParseURL(dsn)
			if err != nil {
				t.Fatal(err)
			}
			c := goredis.NewClient(opt)
			defer c.Close()
			if err := c.Set(context.Background(), "stamp:"+strconv.Itoa(v), v, 0).Err(); err != nil {
				t.Fatal(err)
			}
			// A chunk per write, as the suite's log checks need several
			// (the flush interval is 200ms).
			time.Sleep(300 * time.Millisecond)
		},
		Target: func(t *testing.T) (map[string]string, func(t *testing.T) []int) {
			r := testenv.StartRedis(t)
			return map[string]string{"target-dsn": r.URL()}, func(t *testing.T) []int {
				keys, err := r.Client(t).Keys(context.Background(), "stamp:*").Result()
				if err != nil {
					t.Fatal(err)
				}
				var got []int
				for _, k := range keys {
					v, _ := strconv.Atoi(strings.TrimPrefix(k, "stamp:"))
					got = append(got, v)
				}
				slices.Sort(got)
				return got
			}
		},
	})
}
