package route53_test

import (
	"context"
	"strings"
	"testing"
	"time"

	awsr53 "github.com/aws/aws-sdk-go-v2/service/route53"

	"github.com/drkit/drkit/internal/testenv/route53fake"
	"github.com/drkit/drkit/replication/route53"
)

// The Route 53 API cannot run here: these tests talk to route53fake (a
// labelled fake) through the real aws-sdk-go-v2 client.
func client(t *testing.T, url string) *awsr53.Client {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake")
	c, err := route53.NewClient(context.Background(), "", url)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSwitchUpsertsAndWaitsForInsync(t *testing.T) {
	fake := route53fake.Start(t, "Z123")
	c := client(t, fake.URL)
	ctx := context.Background()
	for _, tc := range []struct{ value, typ string }{{"db-us.internal", "CNAME"}, {"10.1.2.3", "A"}} {
		s := route53.Switch{API: c, Zone: "/hostedzone/Z123", Name: "db.example.com", Value: tc.value, Wait: 30 * time.Second}
		msg, err := s.Run(ctx)
		if err != nil {
			t.Fatalf("switch to %s: %v", tc.value, err)
		}
		if got := fake.Record("Z123", "db.example.com", tc.typ); len(got) != 1 || got[0] != tc.value || !strings.Contains(msg, "in sync") {
			t.Fatalf("record %s = %v (%s)", tc.typ, got, msg)
		}
	}
	_, err := route53.Switch{API: c, Zone: "Zmissing", Name: "db.example.com", Value: "x"}.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "NoSuchHostedZone") || !strings.Contains(err.Error(), "--dns-zone") {
		t.Fatalf("an unknown zone: %v", err)
	}
}
