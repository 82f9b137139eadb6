package s3_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/storetest"
)

// The store trusts a private CA through AWS_CA_BUNDLE, as this environment (and
// many corporate networks) configure it; without that CA, TLS fails clearly.
func TestTLSWithCustomCA(t *testing.T) {
	m := &testenv.MinIO{}
	m.TLS = true
	testenv.Start(t, m)
	if !strings.HasPrefix(m.Endpoint, "https://") {
		t.Fatalf("endpoint %s is not https", m.Endpoint)
	}
	url := m.StoreURL("tls")
	ctx := context.Background()

	t.Setenv("AWS_CA_BUNDLE", m.CAFile)
	s, err := storage.Open(ctx, url, storetest.Options)
	if err != nil {
		t.Fatal(err)
	}
	data := storetest.Data(77, 7<<20)
	mustPut(t, s, "over/tls", data)
	mustEqual(t, s, "over/tls", data)

	t.Setenv("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt") // the system's CAs: not ours
	s, err = storage.Open(ctx, url, storetest.Options)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Put(ctx, "untrusted", bytes.NewReader([]byte("x")))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Put to a server signed by an unknown CA = %v, want a certificate error", err)
	}
}
