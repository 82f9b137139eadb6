package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drkit/drkit/internal/metrics"
)

// Metrics counts what each region's store moves.
type Metrics struct {
	putBytes, getBytes     *prometheus.CounterVec
	putObjects, getObjects *prometheus.CounterVec
	errors                 *prometheus.CounterVec
	up                     *prometheus.GaugeVec
	putSeconds             *prometheus.HistogramVec
}

// NewMetrics registers the store metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"region"})
		reg.MustRegister(c)
		return c
	}
	m := &Metrics{
		putBytes:   counter("drkit_store_put_bytes_total", "Bytes written to a region's store."),
		getBytes:   counter("drkit_store_get_bytes_total", "Bytes read from a region's store."),
		putObjects: counter("drkit_store_put_objects_total", "Objects written to a region's store."),
		getObjects: counter("drkit_store_get_objects_total", "Objects read (opened) from a region's store."),
		errors:     metrics.ErrorsTotal(reg),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drkit_store_up",
			Help: "1 if the region's store answered its last probe, else 0.",
		}, []string{"region"}),
	}
	// In zero-RPO mode a commit waits for one write to each sync region,
	// often two (the one in flight, then its own): this is the number that
	// explains a slow commit. Buckets from a local disk's millisecond to a
	// large upload's minutes.
	m.putSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "drkit_store_put_seconds",
		Help:    "How long a successful write of one object to a region's store took (log chunks are most of them; a backup's upload counts once).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"region"})
	reg.MustRegister(m.up, m.putSeconds)
	return m
}

// SetUp records the result of a probe of region.
func (m *Metrics) SetUp(region string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.up.WithLabelValues(region).Set(v)
}

// Instrument returns s counting into m under region.
func (m *Metrics) Instrument(s Store, region string) Store {
	return &instrumented{Store: s, m: m, region: region}
}

type instrumented struct {
	Store
	m      *Metrics
	region string
}

func (i *instrumented) Unwrap() Store { return i.Store }

func (i *instrumented) fail(kind string, err error) error {
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, context.Canceled) {
		i.m.errors.WithLabelValues("", i.region, kind).Inc()
	}
	return err
}

func (i *instrumented) Put(ctx context.Context, key string, r io.Reader) error {
	// A reader of known size is passed as it is, so the store still sees that it
	// can seek (the SDK may read a body twice to sign it: counting reads would
	// count it twice).
	n := SizeOf(r)
	var c *countReader
	if n < 0 {
		c = &countReader{r: r}
		r = c
	}
	began := time.Now()
	err := i.Store.Put(ctx, key, r)
	if err == nil {
		i.m.putSeconds.WithLabelValues(i.region).Observe(time.Since(began).Seconds())
		if c != nil {
			n = c.n
		}
		i.m.putObjects.WithLabelValues(i.region).Inc()
		i.m.putBytes.WithLabelValues(i.region).Add(float64(n))
	}
	return i.fail("store_put", err)
}

func (i *instrumented) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, err := i.Store.Get(ctx, key, off, n)
	if err != nil {
		return nil, i.fail("store_get", err)
	}
	i.m.getObjects.WithLabelValues(i.region).Inc()
	return &countedBody{ReadCloser: rc, c: i.m.getBytes.WithLabelValues(i.region)}, nil
}

func (i *instrumented) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	info, err := i.Store.Stat(ctx, key)
	return info, i.fail("store_stat", err)
}

func (i *instrumented) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		for info, err := range i.Store.List(ctx, prefix) {
			if !yield(info, i.fail("store_list", err)) {
				return
			}
		}
	}
}

func (i *instrumented) Delete(ctx context.Context, keys ...string) error {
	return i.fail("store_delete", i.Store.Delete(ctx, keys...))
}

type countedBody struct {
	io.ReadCloser
	c prometheus.Counter
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.Add(float64(n))
	return n, err
}

// Probe checks that s answers: a Stat of a key that does not exist must say
// ErrNotFound. Any other answer (refused, wrong credentials, no bucket) is down.
func Probe(ctx context.Context, s Store) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.Stat(ctx, fmt.Sprintf("drkit-probe/%016x", rand.Uint64()))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err == nil {
		return nil // the unlikely probe key exists: the store answered all the same
	}
	return err
}
