package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// PutEach stores what write writes under key in every region at once,
// through each region's pipeline, without staging it: a base backup read
// from a database once goes to every region. A region whose store fails
// drops out (its error in failed[i]) while the others go on; err is write's
// own error, or set when no region takes the data. n is what write wrote.
func PutEach(ctx context.Context, regions []*Region, key string, write func(io.Writer) (int64, error)) (objs []Object, failed []error, n int64, err error) {
	objs = make([]Object, len(regions))
	failed = make([]error, len(regions))
	f := &fanout{pipes: make([]*io.PipeWriter, len(regions)), errs: make([]error, len(regions))}
	var wg sync.WaitGroup
	for i, r := range regions {
		pr, pw := io.Pipe()
		f.pipes[i] = pw
		wg.Go(func() {
			objs[i], failed[i] = r.Pipeline.Put(ctx, key, pr)
			pr.CloseWithError(failed[i]) // unblock the writer if Put failed early
		})
	}
	n, err = write(f)
	for _, pw := range f.pipes {
		pw.CloseWithError(err)
	}
	wg.Wait()
	return objs, failed, n, err
}

// fanout writes to every pipe whose reader still reads: one region's
// failing store does not fail the data for the others.
type fanout struct {
	pipes []*io.PipeWriter
	errs  []error
}

func (f *fanout) Write(p []byte) (int, error) {
	live := 0
	for i, w := range f.pipes {
		if f.errs[i] != nil {
			continue
		}
		if _, err := w.Write(p); err != nil {
			f.errs[i] = err
			continue
		}
		live++
	}
	if live == 0 {
		return 0, fmt.Errorf("no region takes the data: %w", errors.Join(f.errs...))
	}
	return len(p), nil
}
