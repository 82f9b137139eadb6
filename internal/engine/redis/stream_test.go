package redis

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// syncBuffer is a log sink the shipper's goroutine writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// drd warns at start when the primary's backlog is too small for its stream
// to survive a restart without a full resync.
func TestShipperWarnsOfASmallBacklog(t *testing.T) {
	r := testenv.StartRedis(t)
	if err := r.Client(t).ConfigSet(context.Background(), "repl-backlog-size", "16384").Err(); err != nil {
		t.Fatal(err)
	}
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	region := &storage.Region{Name: "a", Store: st, Pipeline: &storage.Pipeline{Store: st, Region: "a"}}
	logs := &syncBuffer{}
	cl := config.Cluster{Name: "c", Engine: Name, DSN: r.URL(), ShipTo: []string{"a"}, FlushInterval: config.Duration(200 * time.Millisecond)}
	sh := Engine{}.NewShipper(cl, []*storage.Region{region}, slog.New(slog.NewTextHandler(logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sh.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	testenv.WaitFor(t, 10*time.Second, "the sizing warning", func() bool {
		return strings.Contains(logs.String(), "may force full resyncs") && strings.Contains(logs.String(), "repl-backlog-size is 16384 bytes")
	})
}
