package s3_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/s3"
	"github.com/drkit/drkit/storage/storetest"
)

func TestMain(m *testing.M) {
	testenv.UseS3Credentials()
	os.Exit(m.Run())
}

var prefixes atomic.Int64

// freshStore opens an empty store: a new prefix in the server's bucket.
func freshStore(t *testing.T, srv *testenv.S3, query string, opts storage.Options) storage.Store {
	t.Helper()
	url := srv.StoreURL(fmt.Sprintf("t%d", prefixes.Add(1))) + query
	s, err := storage.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	minio, vgw := &testenv.MinIO{}, &testenv.VersityGW{}
	testenv.Start(t, minio, vgw)
	for _, srv := range []struct {
		name string
		s3   *testenv.S3
	}{{"minio", &minio.S3}, {"versitygw", &vgw.S3}} {
		for _, mode := range []string{"when_required", "when_supported"} {
			t.Run(srv.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				storetest.Run(t, func(t *testing.T) storage.Store {
					return freshStore(t, srv.s3, "&checksum="+mode, storetest.Options)
				})
			})
		}
	}
}
