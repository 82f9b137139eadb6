package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drkit/drkit/snapshots"
)

const token = "0123456789abcdef0123456789abcdef"

// start runs a Server with opts until the test ends and returns its base URL.
func start(t *testing.T, opts Options) string {
	t.Helper()
	opts.Addr, opts.Gatherer, opts.Log = "127.0.0.1:0", prometheus.NewRegistry(), slog.New(slog.DiscardHandler)
	s := NewServer(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for s.Ready() != nil {
		time.Sleep(time.Millisecond)
	}
	scheme := "http://"
	if opts.TLS != nil {
		scheme = "https://"
	}
	return scheme + s.Addr().String()
}

func tokensFile(t *testing.T, body string) *Tokens {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call sends a request and decodes the JSON answer into out (if not nil).
func call(t *testing.T, c *http.Client, method, url, bearer string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %q is not JSON: %v", method, url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// backupCluster is a cluster whose backup waits for release: the API's input
// (drd wires real engines; their tests run real servers).
func backupCluster(release chan struct{}, fail error) Cluster {
	return Cluster{Name: "orders", Engine: "postgres", Region: "a", ShipTo: []string{"a", "b"},
		Backup: func(ctx context.Context) (string, error) {
			select {
			case <-release:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			if fail != nil {
				return "", fail
			}
			return "20261122T101500Z", nil
		},
		Backups: func(_ context.Context, region string) ([]snapshots.Summary, error) {
			if region == "b" {
				return nil, errors.New("region b: store unreachable")
			}
			return []snapshots.Summary{{ID: "20261121T000000Z", Size: 42}}, nil
		},
	}
}

func TestAuthTokens(t *testing.T) {
	base := start(t, Options{Tokens: tokensFile(t, "# ops\nalice:"+token+"\n"), Clusters: []Cluster{backupCluster(nil, nil)}})
	c := http.DefaultClient
	var e apiError
	if code := call(t, c, "GET", base+"/api/v1/status", "", &e); code != 401 || e.Error.Code != "unauthorized" {
		t.Errorf("no token: %d %+v, want 401 unauthorized", code, e)
	}
	if code := call(t, c, "GET", base+"/api/v1/status", token[:31]+"X", &e); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
	var st Status
	if code := call(t, c, "GET", base+"/api/v1/status", token, &st); code != 200 || len(st.Clusters) != 1 || st.Clusters[0].Name != "orders" {
		t.Errorf("good token: %d %+v", code, st)
	}
	if code := call(t, c, "GET", base+"/metrics", "", nil); code != 200 {
		t.Errorf("/metrics without protect_all: %d, want 200", code)
	}
	if code := call(t, c, "GET", base+"/api/v1/nope", token, &e); code != 404 || e.Error.Code != "not_found" {
		t.Errorf("unknown endpoint: %d %+v", code, e)
	}

	protected := start(t, Options{Tokens: tokensFile(t, token+"\n"), ProtectAll: true})
	if code := call(t, c, "GET", protected+"/metrics", "", &e); code != 401 {
		t.Errorf("/metrics with protect_all and no token: %d, want 401", code)
	}
	if code := call(t, c, "GET", protected+"/healthz", token, nil); code != 200 {
		t.Errorf("/healthz with protect_all and a token: %d, want 200", code)
	}
}

func TestLoadTokensRefusesWeakOrEmpty(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"short": "bob:secret\n", "empty": "# nothing\n\n"} {
		path := filepath.Join(dir, name)
		_ = os.WriteFile(path, []byte(body), 0o600)
		_, err := LoadTokens(path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err %v, want one naming the file", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the token: %v", name, err)
		}
	}
}

func TestBackupJobs(t *testing.T) {
	release := make(chan struct{})
	base := start(t, Options{Tokens: tokensFile(t, token+"\n"), Clusters: []Cluster{backupCluster(release, nil)}})
	c := http.DefaultClient
	var job Job
	if code := call(t, c, "POST", base+"/api/v1/clusters/orders/backups", token, &job); code != 202 || job.State != "running" || job.ID == "" {
		t.Fatalf("start backup: %d %+v", code, job)
	}
	var e apiError
	if code := call(t, c, "POST", base+"/api/v1/clusters/orders/backups", token, &e); code != 409 || e.Error.Code != "conflict" {
		t.Errorf("second backup while one runs: %d %+v, want 409", code, e)
	}
	if code := call(t, c, "POST", base+"/api/v1/clusters/nope/backups", token, &e); code != 404 {
		t.Errorf("unknown cluster: %d, want 404", code)
	}
	close(release)
	var got Job
	for deadline := time.Now().Add(5 * time.Second); got.State != "succeeded"; time.Sleep(10 * time.Millisecond) {
		if call(t, c, "GET", base+"/api/v1/jobs/"+job.ID, token, &got) != 200 || time.Now().After(deadline) {
			t.Fatalf("job: %+v", got)
		}
	}
	if got.Result != "20261122T101500Z" || got.Finished == nil {
		t.Errorf("finished job: %+v", got)
	}
	var regions []RegionBackups
	if code := call(t, c, "GET", base+"/api/v1/clusters/orders/backups", token, &regions); code != 200 || len(regions) != 2 ||
		len(regions[0].Backups) != 1 || regions[1].Error == "" {
		t.Errorf("backups: %d %+v (want region a's backup and region b's error)", code, regions)
	}
}

func TestActionsNeedAuthentication(t *testing.T) {
	base := start(t, Options{Clusters: []Cluster{backupCluster(nil, nil)}})
	var e apiError
	if code := call(t, http.DefaultClient, "POST", base+"/api/v1/clusters/orders/backups", "", &e); code != 403 || !strings.Contains(e.Error.Message, "tokens_file") {
		t.Errorf("action without any authentication configured: %d %+v, want 403 naming tokens_file", code, e)
	}
	var cl []Cluster
	if code := call(t, http.DefaultClient, "GET", base+"/api/v1/clusters", "", &cl); code != 200 || len(cl) != 1 {
		t.Errorf("read without authentication configured: %d %+v", code, cl)
	}
}

// TestOpenAPIMatchesRoutes: every route is documented and every documented
// /api path is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	var documented, served []string
	for path, ops := range doc.Paths {
		for m := range ops {
			if strings.HasPrefix(path, "/api/") {
				documented = append(documented, strings.ToUpper(m)+" "+path)
			}
		}
	}
	for _, r := range (&Server{}).apiRoutes() {
		served = append(served, r.method+" "+r.path)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("openapi.json documents\n  %v\nthe server serves\n  %v", documented, served)
	}
}

// TestClientCertificates: with a client CA, a verified certificate
// authenticates; a client without one needs a token.
func TestClientCertificates(t *testing.T) {
	ca, caKey := newCert(t, nil, nil, "drkit test CA")
	srv, srvKey := newCert(t, ca, caKey, "127.0.0.1")
	cli, cliKey := newCert(t, ca, caKey, "ops-laptop")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serverCert := tls.Certificate{Certificate: [][]byte{srv.Raw}, PrivateKey: srvKey}
	base := start(t, Options{Clusters: []Cluster{backupCluster(nil, nil)},
		TLS: &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}})

	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cli.Raw}, PrivateKey: cliKey}}}}}
	without := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code := call(t, withCert, "GET", base+"/api/v1/clusters", "", nil); code != 200 {
		t.Errorf("client certificate: %d, want 200", code)
	}
	if code := call(t, without, "GET", base+"/api/v1/clusters", "", nil); code != 401 {
		t.Errorf("no client certificate, no token: %d, want 401", code)
	}
}

// newCert makes a certificate signed by parent (self-signed when nil).
func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	signer, signKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
