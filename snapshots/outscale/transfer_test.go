package outscale_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/internal/testenv/oapifake"
	"github.com/drkit/drkit/snapshots/ec2"
	"github.com/drkit/drkit/snapshots/outscale"
	"github.com/drkit/drkit/storage"
	s3store "github.com/drkit/drkit/storage/s3"
)

func TestMain(m *testing.M) {
	testenv.UseS3Credentials()
	os.Exit(m.Run())
}

const accessKey, secretKey = "AKFAKE0123456789", "fake-secret"

// world is two Regions: a FAKE OAPI each, and a real MinIO each as its OOS.
type world struct {
	cloud    *oapifake.Cloud
	regions  map[string]*oapifake.Region
	transfer map[string]*s3store.Store // the transfer buckets (prefix drkit-transfer/)
	urls     map[string]string         // their store URLs
	parts    atomic.Int64              // multipart parts sent
	resumed  atomic.Int64              // multipart parts found stored by a resumed upload
	stateDir string
}

func newWorld(t *testing.T, exportSize int64, throttleEvery int) *world {
	t.Helper()
	w := &world{cloud: oapifake.NewCloud(accessKey), regions: map[string]*oapifake.Region{}, transfer: map[string]*s3store.Store{},
		urls: map[string]string{}, stateDir: t.TempDir()}
	w.cloud.ExportSize, w.cloud.Steps, w.cloud.ThrottleEvery = exportSize, 3, throttleEvery
	t.Cleanup(w.cloud.Close)
	ctx := context.Background()
	var mu sync.Mutex
	for _, name := range []string{"eu-west-2", "us-east-2"} {
		srv := testenv.StartMinIO(t)
		root := open(t, srv.StoreURL(""), storage.Options{})
		u, _ := url.Parse(srv.Endpoint)
		w.regions[name] = w.cloud.AddRegion(name, oapifake.OOS{Bucket: srv.Bucket, Store: root, Host: u.Host,
			Presign: func(ctx context.Context, key string) (string, error) { return root.Presign(ctx, key, time.Hour) }})
		mu.Lock()
		w.urls[name] = srv.StoreURL("drkit-transfer")
		w.transfer[name] = open(t, srv.StoreURL("drkit-transfer"), storage.Options{PartSize: storage.MinPartSize, Threshold: 8 << 20,
			StateDir: w.stateDir, OnPart: func(e storage.PartEvent) {
				if e.Resumed {
					w.resumed.Add(1)
				} else {
					w.parts.Add(1)
				}
			}})
		mu.Unlock()
	}
	_ = ctx
	return w
}

func open(t *testing.T, raw string, opts storage.Options) *s3store.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), raw, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*s3store.Store)
}

func (w *world) transferOf(kind ec2.Kind, progress func(outscale.Progress)) *outscale.Transfer {
	client := func(name string) *outscale.Client {
		return outscale.NewClient(name, w.regions[name].Endpoint(), accessKey, secretKey, nil, nil)
	}
	from, to := client("eu-west-2"), client("us-east-2")
	from.SetBackoff(5*time.Millisecond, 50*time.Millisecond)
	to.SetBackoff(5*time.Millisecond, 50*time.Millisecond)
	return &outscale.Transfer{Job: "db-volumes", Kind: kind, From: from, To: to, FromOOS: w.transfer["eu-west-2"], ToOOS: w.transfer["us-east-2"],
		Timeout: time.Minute, PollMin: 10 * time.Millisecond, PollMax: 50 * time.Millisecond, Progress: progress}
}

func (w *world) objectsLeft(t *testing.T) int {
	n := 0
	for _, s := range w.transfer {
		for _, err := range s.List(context.Background(), "") {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	return n
}

// A 300 MiB exported snapshot crosses from eu-west-2 to us-east-2 through
// the real multipart path between two MinIOs, with every 7th OAPI call
// throttled: the import in us-east-2 holds the source's bytes, is described
// as a drkit copy, and the transfer objects are gone from both buckets.
func TestTransferSnapshot(t *testing.T) {
	w := newWorld(t, 300<<20, 7)
	src := w.cloud.AddSnapshot("eu-west-2", "vol-1", 10, nil)
	var stages sync.Map
	tr := w.transferOf(outscale.KindSnapshot, func(p outscale.Progress) { stages.Store(p.Stage, true) })
	res, err := tr.Run(context.Background(), src.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := w.cloud.Snapshot("us-east-2", res.ID)
	if !ok || got.State != "completed" || got.Digest != src.Digest || got.Description != tr.Description(src.ID) || got.SizeGiB != 10 {
		t.Fatalf("import %s: %+v; want completed, digest %s, 10 GiB, described %q", res.ID, got, src.Digest, tr.Description(src.ID))
	}
	if res.Bytes != 300<<20 || w.parts.Load() < 300/5 {
		t.Errorf("copied %d bytes in %d parts; want 300 MiB through multipart", res.Bytes, w.parts.Load())
	}
	for _, s := range []string{"export", "copy", "import", "cleanup"} {
		if _, ok := stages.Load(s); !ok {
			t.Errorf("no progress reported for stage %s", s)
		}
	}
	if n := w.objectsLeft(t); n != 0 {
		t.Errorf("%d transfer object(s) left after a completed import", n)
	}
	if w.cloud.Calls("CreateSnapshotExportTask") != 1 || w.cloud.Calls("CreateSnapshot") < 1 {
		t.Errorf("calls: %d exports, %d imports", w.cloud.Calls("CreateSnapshotExportTask"), w.cloud.Calls("CreateSnapshot"))
	}
}

// A second transfer of the same source (a copy made again) does not take
// the first one's finished export task, whose objects are gone, for its
// own: it exports again.
func TestTransferAgainExportsAgain(t *testing.T) {
	w := newWorld(t, 1<<20, 0)
	src := w.cloud.AddSnapshot("eu-west-2", "vol-1", 10, nil)
	for range 2 {
		if _, err := w.transferOf(outscale.KindSnapshot, nil).Run(context.Background(), src.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.cloud.Calls("CreateSnapshotExportTask"); n != 2 {
		t.Errorf("%d export tasks for two transfers, want 2", n)
	}
}

// A transfer stopped in each stage (its context cancelled, as a killed
// drctl) resumes on the next run without redoing finished stages: one
// export task, the copied parts not sent again, one import.
func TestTransferResumesEveryStage(t *testing.T) {
	for _, stage := range []string{"export", "copy", "import"} {
		t.Run(stage, func(t *testing.T) {
			w := newWorld(t, 64<<20, 0)
			src := w.cloud.AddSnapshot("eu-west-2", "vol-1", 10, nil)
			ctx, cancel := context.WithCancel(context.Background())
			tr := w.transferOf(outscale.KindSnapshot, func(p outscale.Progress) {
				// The copy stops past its middle: parts are stored by then.
				if p.Stage == stage && p.Done > 0 && p.Done < p.Total && (stage != "copy" || p.Done > p.Total/2) {
					cancel()
				}
			})
			_, err := tr.Run(ctx, src.ID)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("run stopped in %s: %v, want context.Canceled", stage, err)
			}
			if stage != "export" && !strings.Contains(err.Error(), "are kept for the next run") {
				t.Errorf("the stopped run's error does not report the kept objects: %v", err)
			}
			sentBefore := w.parts.Load()
			res, err := w.transferOf(outscale.KindSnapshot, nil).Run(context.Background(), src.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := w.cloud.Snapshot("us-east-2", res.ID); got.Digest != src.Digest {
				t.Fatalf("resumed import %s holds %s, want %s", res.ID, got.Digest, src.Digest)
			}
			if n := w.cloud.Calls("CreateSnapshotExportTask"); n != 1 {
				t.Errorf("%d export tasks started, want 1", n)
			}
			if !strings.Contains(strings.Join(res.Resumed, " "), "export ") {
				t.Errorf("the second run did not resume the export: %v", res.Resumed)
			}
			switch stage {
			case "copy":
				if w.resumed.Load() == 0 || w.parts.Load()-sentBefore >= 64/5+1 {
					t.Errorf("copy resumed %d part(s) and sent %d again; want the stored parts skipped", w.resumed.Load(), w.parts.Load()-sentBefore)
				}
			case "import":
				if w.parts.Load() != sentBefore || w.cloud.Calls("CreateSnapshot") != 1 {
					t.Errorf("after a stop in the import: %d more part(s) sent, %d CreateSnapshot calls; want 0 and 1", w.parts.Load()-sentBefore, w.cloud.Calls("CreateSnapshot"))
				}
			}
			if n := w.objectsLeft(t); n != 0 {
				t.Errorf("%d transfer object(s) left", n)
			}
		})
	}
}

// An export that fails is an error naming the task's comment; nothing is
// imported.
func TestTransferExportFails(t *testing.T) {
	w := newWorld(t, 1<<20, 0)
	src := w.cloud.AddSnapshot("eu-west-2", "vol-1", 10, nil)
	w.cloud.FailExport[src.ID] = true
	_, err := w.transferOf(outscale.KindSnapshot, nil).Run(context.Background(), src.ID)
	if err == nil || !strings.Contains(err.Error(), "FAKE: the export failed") || !strings.Contains(err.Error(), src.ID) {
		t.Fatalf("err %v, want the failed export named", err)
	}
	if w.cloud.Calls("CreateSnapshot") != 0 {
		t.Error("an import was started after a failed export")
	}
}

// An image of two snapshots crosses Regions: its manifest is rewritten to
// point at the copies in us-east-2's bucket (the FAKE refuses URLs of
// another Region), and the new image's snapshots hold the sources' bytes.
//
// Another account's public image named and described like the copy is not
// taken for it (OAPI lists public images too).
func TestTransferImage(t *testing.T) {
	w := newWorld(t, 16<<20, 0)
	im := w.cloud.AddImage("eu-west-2", "web", 2)
	tr := w.transferOf(outscale.KindImage, nil)
	foreign := w.cloud.AddForeignImage("us-east-2", tr.ImportName(im.ID), tr.Description(im.ID))
	res, err := tr.Run(context.Background(), im.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID == foreign.ID {
		t.Fatalf("the transfer took another account's public image %s for its copy", foreign.ID)
	}
	got, ok := w.cloud.Image("us-east-2", res.ID)
	if !ok || got.State != "available" || len(got.Snapshots) != 2 {
		t.Fatalf("image %s in us-east-2: %+v", res.ID, got)
	}
	for i, id := range got.Snapshots {
		s, _ := w.cloud.Snapshot("us-east-2", id)
		want, _ := w.cloud.Snapshot("eu-west-2", im.Snapshots[i])
		if s.Digest != want.Digest {
			t.Errorf("snapshot %d of the copy holds %s, want %s", i, s.Digest, want.Digest)
		}
	}
	if n := w.objectsLeft(t); n != 0 {
		t.Errorf("%d transfer object(s) left", n)
	}
}

// A wrong access key is refused with a clear error naming the call.
func TestTransferWrongKey(t *testing.T) {
	w := newWorld(t, 1<<20, 0)
	src := w.cloud.AddSnapshot("eu-west-2", "vol-1", 10, nil)
	tr := w.transferOf(outscale.KindSnapshot, nil)
	tr.From = outscale.NewClient("eu-west-2", w.regions["eu-west-2"].Endpoint(), "AKWRONG", secretKey, nil, nil)
	_, err := tr.Run(context.Background(), src.ID)
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "access key") || strings.Contains(err.Error(), secretKey) {
		t.Fatalf("err %v, want a 401 naming the access key, without the secret", err)
	}
}
