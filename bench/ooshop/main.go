// Command ooshop is the drkit side of bench/outscale.sh: it copies one
// object from one S3 store to another the way an OUTSCALE transfer's copy
// stage does (outscale.CopyObject: a streamed, resumable multipart upload),
// and prints the seconds it took.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/drkit/drkit/snapshots/outscale"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/s3"
)

func main() {
	from := flag.String("from", "", "source store URL (s3://...)")
	to := flag.String("to", "", "destination store URL")
	key := flag.String("key", "", "the object's key")
	part := flag.Int64("part-size", 16<<20, "multipart part size")
	conc := flag.Int("concurrency", 4, "parts in flight")
	flag.Parse()
	ctx := context.Background()
	state, err := os.MkdirTemp("", "ooshop-state")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(state)
	opts := storage.Options{PartSize: *part, Concurrency: *conc, StateDir: state}
	src, err := storage.Open(ctx, *from, opts)
	if err != nil {
		log.Fatal(err)
	}
	dst, err := storage.Open(ctx, *to, opts)
	if err != nil {
		log.Fatal(err)
	}
	info, err := src.Stat(ctx, *key)
	if err != nil {
		log.Fatal(err)
	}
	t0 := time.Now()
	if err := outscale.CopyObject(ctx, src, dst, info, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%.3f\n", time.Since(t0).Seconds())
}
