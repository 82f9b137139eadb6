package snapshots

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"github.com/drkit/drkit/storage"
)

// ReadObjects reads objs through the pipeline, which checks each one's size
// and SHA-256 at its end, parallel at a time (default 4), and returns each
// object's error (nil when it read clean) in objs' order. Objects are
// streamed, so memory stays bounded whatever their sizes. progress, if set,
// is told the stored bytes read so far and their total.
func ReadObjects(ctx context.Context, p *storage.Pipeline, objs []storage.Object, parallel int, progress func(done, total int64)) []error {
	if parallel <= 0 {
		parallel = 4
	}
	var total int64
	for _, o := range objs {
		total += o.Size
	}
	var done atomic.Int64
	var mu sync.Mutex
	errs := make([]error, len(objs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range next {
				errs[i] = readObject(ctx, p, objs[i])
				n := done.Add(objs[i].Size)
				if progress != nil {
					mu.Lock()
					progress(n, total)
					mu.Unlock()
				}
			}
		})
	}
feed:
	for i := range objs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return errs
}

// readObject reads one object to its end: the pipeline checks its SHA-256.
func readObject(ctx context.Context, p *storage.Pipeline, obj storage.Object) error {
	rc, err := p.Open(ctx, obj)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}
