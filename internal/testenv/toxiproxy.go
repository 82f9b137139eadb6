package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy is a toxiproxy TCP proxy, run in-process, between a client under test and
// a real server, for injecting latency, resets and outages.
type Proxy struct {
	// Addr is where clients connect (127.0.0.1:port).
	Addr string
	p    *toxiproxy.Proxy
}

// NewProxy starts a proxy to upstream (host:port), removed when the test ends.
func NewProxy(tb testing.TB, upstream string) *Proxy {
	tb.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, tb.Name(), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		tb.Fatalf("testenv: start toxiproxy to %s: %v", upstream, err)
	}
	tb.Cleanup(p.Stop)
	return &Proxy{Addr: p.Listen, p: p}
}

// AddToxic adds a toxic: kind is a toxiproxy type (latency, reset_peer,
// limit_data, timeout, ...), stream "upstream" or "downstream", toxicity the share
// of connections affected, attrs its attributes as JSON (for example
// `{"latency": 200}`).
func (p *Proxy) AddToxic(tb testing.TB, name, kind, stream string, toxicity float64, attrs string) {
	tb.Helper()
	spec := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":%g,"attributes":%s}`, name, kind, stream, toxicity, attrs)
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
		tb.Fatalf("testenv: add toxic %s: %v", spec, err)
	}
}

// RemoveToxic removes a toxic added with AddToxic.
func (p *Proxy) RemoveToxic(tb testing.TB, name string) {
	tb.Helper()
	if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		tb.Fatalf("testenv: remove toxic %s: %v", name, err)
	}
}

// Down closes the proxy's listener and every connection through it: an outage.
func (p *Proxy) Down() { p.p.Stop() }

// Up listens again on the same address after Down.
func (p *Proxy) Up(tb testing.TB) {
	tb.Helper()
	if err := p.p.Start(); err != nil {
		tb.Errorf("testenv: restart toxiproxy on %s: %v", p.Addr, err)
	}
}

// Retarget points the proxy at another upstream (host:port), as a VIP moves
// to a promoted server: connections through it are cut, new ones reach the
// new upstream.
func (p *Proxy) Retarget(tb testing.TB, upstream string) {
	tb.Helper()
	p.p.Stop()
	p.p.Upstream = upstream
	if err := p.p.Start(); err != nil {
		tb.Fatalf("testenv: retarget toxiproxy on %s to %s: %v", p.Addr, upstream, err)
	}
}
