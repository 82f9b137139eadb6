// Package oapifake is a FAKE of the OUTSCALE API (OAPI), for tests only: no
// OUTSCALE account is reachable from the test machines. It serves, as JSON
// over HTTP at /api/v1/<Action> like the real endpoint, the calls
// snapshots/outscale makes (ReadSnapshots, ReadImages, Create/Read
// SnapshotExportTask(s), Create/Read ImageExportTask(s), CreateSnapshot
// and CreateImage from a file, CreateTags), with:
//
//   - signatures checked for shape (AWS4-HMAC-SHA256, the access key, the
//     oapi service, a 64-hex signature, X-Amz-Date), a wrong access key
//     answered 401;
//   - export and import tasks that move through their states over polls
//     with progress, write their objects into the Region's real OOS (a MinIO
//     in the tests) when they complete, and read what an import is given
//     through its pre-signed URL, refusing URLs outside the Region's OOS;
//   - injected failures (an export that fails) and throttling (every Nth
//     request answered 503).
//
// What it does not model: real disk image formats (an export writes
// deterministic bytes), quotas, accounts, permissions beyond the key.
package oapifake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"time"

	osc "github.com/outscale/osc-sdk-go/v2"

	"github.com/drkit/drkit/storage"
)

// OOS is a Region's object storage as the fake needs it: the bucket's
// store (rooted at the bucket) and a pre-signer for the manifests it
// writes.
type OOS struct {
	Bucket string
	Store  storage.Store
	// Host is the host:port pre-signed URLs of this Region point at.
	Host    string
	Presign func(ctx context.Context, key string) (string, error)
}

// Cloud is the fake's state: Regions with their snapshots, images and
// tasks.
type Cloud struct {
	AccessKey string
	// Steps is how many polls a task or import takes (default 3).
	Steps int
	// ExportSize is the size of an exported snapshot object (default 8 MiB).
	ExportSize int64
	// ThrottleEvery, if > 0, answers every Nth request 503.
	ThrottleEvery int
	// FailExport names sources whose export task fails.
	FailExport map[string]bool

	mu       sync.Mutex
	regions  map[string]*Region
	requests int
	seq      int
	calls    map[string]int
}

// Region is one fake Region.
type Region struct {
	Name      string
	volumes   map[string]map[string]string // id: tags
	vms       map[string]bool
	publicIPs map[string]string // ip: the VM it is linked to ("" none)
	oos       OOS
	snapshots map[string]*Snapshot
	images    map[string]*Image
	tasks     map[string]*task
	server    *httptest.Server
}

// Account is the account every key of the fake belongs to; resources of
// other accounts (public ones) are made by AddForeignImage.
const Account = "123456789012"

// Snapshot is a fake snapshot; Digest is the SHA-256 of its contents.
type Snapshot struct {
	ID, State, Token, Description, Volume string
	// Owner is the account id ("" is Account).
	Owner    string
	Created  time.Time
	SizeGiB  int32
	Progress int32
	Digest   string
	Tags     map[string]string
	fileURL  string
	polls    int
}

// Image is a fake image over snapshots.
type Image struct {
	ID, Name, State, Description string
	// Owner is the account id ("" is Account).
	Owner     string
	Created   time.Time
	Snapshots []string
	Tags      map[string]string
	fileURL   string
	polls     int
}

type task struct {
	ID, Kind, Source, State, Comment, Bucket, Prefix, Format string
	Progress                                                 int32
	ManifestURL                                              string
	polls                                                    int
}

// NewCloud returns an empty fake cloud accepting accessKey.
func NewCloud(accessKey string) *Cloud {
	return &Cloud{AccessKey: accessKey, regions: map[string]*Region{}, calls: map[string]int{}, FailExport: map[string]bool{}}
}

// AddRegion starts the Region's endpoint; its URL is Endpoint(name).
func (c *Cloud) AddRegion(name string, oos OOS) *Region {
	r := &Region{Name: name, oos: oos, volumes: map[string]map[string]string{}, vms: map[string]bool{}, publicIPs: map[string]string{}, snapshots: map[string]*Snapshot{}, images: map[string]*Image{}, tasks: map[string]*task{}}
	r.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { c.serve(r, w, req) }))
	c.mu.Lock()
	c.regions[name] = r
	c.mu.Unlock()
	return r
}

// Close stops every Region's endpoint.
func (c *Cloud) Close() {
	for _, r := range c.regions {
		r.server.Close()
	}
}

// Endpoint is the Region's OAPI base URL.
func (r *Region) Endpoint() string { return r.server.URL + "/api/v1" }

// Calls is how many times action was called (all Regions).
func (c *Cloud) Calls(action string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[action]
}

func (c *Cloud) id(prefix string) string {
	c.seq++
	return fmt.Sprintf("%s-%08x", prefix, c.seq)
}

// AddSnapshot makes a completed snapshot of volume in region; its content
// is ExportSize deterministic bytes.
func (c *Cloud) AddSnapshot(region, volume string, sizeGiB int32, tags map[string]string) *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &Snapshot{ID: c.id("snap"), State: "completed", Volume: volume, SizeGiB: sizeGiB, Progress: 100, Tags: tags, Created: time.Now()}
	s.Digest = digestOf(s.ID, c.exportSize())
	c.regions[region].snapshots[s.ID] = s
	return s
}

// AddImage makes an available image over n new snapshots in region.
func (c *Cloud) AddImage(region, name string, n int) *Image {
	im := &Image{Name: name, State: "available"}
	for range n {
		im.Snapshots = append(im.Snapshots, c.AddSnapshot(region, "", 10, nil).ID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	im.ID, im.Created = c.id("ami"), time.Now()
	c.regions[region].images[im.ID] = im
	return im
}

// AddVM makes a VM in region.
func (c *Cloud) AddVM(region string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.id("i")
	c.regions[region].vms[id] = true
	return id
}

// AddPublicIP allocates ip in region, linked to vm ("" none).
func (c *Cloud) AddPublicIP(region, ip, vm string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.regions[region].publicIPs[ip] = vm
}

// PublicIP returns the VM ip is linked to in region.
func (c *Cloud) PublicIP(region, ip string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regions[region].publicIPs[ip]
}

// AddVolume makes a volume with tags in region.
func (c *Cloud) AddVolume(region string, tags map[string]string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.id("vol")
	c.regions[region].volumes[id] = tags
	return id
}

// AddForeignImage makes an available, public image of another account in
// region, with the given name and description (OAPI lists those too).
func (c *Cloud) AddForeignImage(region, name, desc string) *Image {
	c.mu.Lock()
	defer c.mu.Unlock()
	im := &Image{ID: c.id("ami"), Name: name, Description: desc, State: "available", Owner: "999999999999", Created: time.Now()}
	c.regions[region].images[im.ID] = im
	return im
}

// Snapshots returns copies of every snapshot in region.
func (c *Cloud) Snapshots(region string) []Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Snapshot
	for _, s := range c.regions[region].snapshots {
		out = append(out, *s)
	}
	return out
}

// Snapshot returns a copy of snapshot id in region.
func (c *Cloud) Snapshot(region, id string) (Snapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.regions[region].snapshots[id]
	if !ok {
		return Snapshot{}, false
	}
	return *s, true
}

// Image returns a copy of image id in region.
func (c *Cloud) Image(region, id string) (Image, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	im, ok := c.regions[region].images[id]
	if !ok {
		return Image{}, false
	}
	return *im, true
}

func (c *Cloud) exportSize() int64 {
	if c.ExportSize > 0 {
		return c.ExportSize
	}
	return 8 << 20
}

func (c *Cloud) steps() int { return max(c.Steps, 1) }

// content is a snapshot's deterministic contents.
func content(id string, size int64) io.Reader {
	seed := sha256.Sum256([]byte(id))
	rng := rand.NewChaCha8(seed)
	return io.LimitReader(rng, size)
}

func digestOf(id string, size int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, content(id, size))
	return hex.EncodeToString(h.Sum(nil))
}

var authShape = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/[a-z0-9-]+/oapi/(aws4|osc4)_request, ?SignedHeaders=[a-z0-9;.-]+, ?Signature=[0-9a-f]{64}$`)

func (c *Cloud) serve(r *Region, w http.ResponseWriter, req *http.Request) {
	action := strings.TrimPrefix(req.URL.Path, "/api/v1/")
	c.mu.Lock()
	c.requests++
	c.calls[action]++
	throttled := c.ThrottleEvery > 0 && c.requests%c.ThrottleEvery == 0
	c.mu.Unlock()
	m := authShape.FindStringSubmatch(req.Header.Get("Authorization"))
	switch {
	case req.Method != http.MethodPost:
		fail(w, 405, "InvalidAction", "POST only")
		return
	case m == nil || req.Header.Get("X-Amz-Date") == "":
		fail(w, 401, "AuthFailure", "the request is not signed with AWS4-HMAC-SHA256 for service oapi")
		return
	case m[1] != c.AccessKey:
		fail(w, 401, "AuthFailure", "unknown access key")
		return
	case throttled:
		fail(w, 503, "RequestLimitExceeded", "FAKE throttling")
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		fail(w, 400, "InvalidParameter", err.Error())
		return
	}
	out, status, err := c.handle(req.Context(), r, action, body)
	if err != nil {
		typ := "InvalidParameter"
		if errors.Is(err, errNotFound) {
			typ = "InvalidResource"
		}
		fail(w, status, typ, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func fail(w http.ResponseWriter, status int, typ, details string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	code := fmt.Sprint(status)
	_ = json.NewEncoder(w).Encode(osc.ErrorResponse{Errors: &[]osc.Errors{{Type: &typ, Code: &code, Details: &details}}})
}

func (c *Cloud) handle(ctx context.Context, r *Region, action string, body []byte) (any, int, error) {
	switch action {
	case "ReadSnapshots":
		var in osc.ReadSnapshotsRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		return c.readSnapshots(ctx, r, in), 200, nil
	case "ReadImages":
		var in osc.ReadImagesRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		return c.readImages(ctx, r, in), 200, nil
	case "CreateSnapshotExportTask":
		var in osc.CreateSnapshotExportTaskRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		t, err := c.startExport(r, "snapshot", in.SnapshotId, in.OsuExport)
		if err != nil {
			return nil, 400, err
		}
		return osc.CreateSnapshotExportTaskResponse{SnapshotExportTask: snapshotTask(c.snapshotOf(t))}, 200, nil
	case "CreateImageExportTask":
		var in osc.CreateImageExportTaskRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		t, err := c.startExport(r, "image", in.ImageId, in.OsuExport)
		if err != nil {
			return nil, 400, err
		}
		return osc.CreateImageExportTaskResponse{ImageExportTask: imageTask(c.snapshotOf(t))}, 200, nil
	case "ReadSnapshotExportTasks":
		var out []osc.SnapshotExportTask
		for _, t := range c.readTasks(ctx, r, "snapshot") {
			out = append(out, *snapshotTask(&t))
		}
		return osc.ReadSnapshotExportTasksResponse{SnapshotExportTasks: &out}, 200, nil
	case "ReadImageExportTasks":
		var out []osc.ImageExportTask
		for _, t := range c.readTasks(ctx, r, "image") {
			out = append(out, *imageTask(&t))
		}
		return osc.ReadImageExportTasksResponse{ImageExportTasks: &out}, 200, nil
	case "CreateSnapshot":
		var in osc.CreateSnapshotRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		s, err := c.importSnapshot(r, in)
		if err != nil {
			return nil, 400, err
		}
		return osc.CreateSnapshotResponse{Snapshot: s}, 200, nil
	case "CreateImage":
		var in osc.CreateImageRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		im, status, err := c.importImage(r, in)
		if err != nil {
			return nil, status, err
		}
		return osc.CreateImageResponse{Image: im}, 200, nil
	case "ReadAccounts":
		acct := Account
		return osc.ReadAccountsResponse{Accounts: &[]osc.Account{{AccountId: &acct}}}, 200, nil
	case "ReadVolumes":
		var in osc.ReadVolumesRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		return c.readVolumes(r, in), 200, nil
	case "DeleteSnapshot":
		var in osc.DeleteSnapshotRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		return osc.DeleteSnapshotResponse{}, 400, c.deleteSnapshot(r, in.SnapshotId)
	case "DeleteImage":
		var in osc.DeleteImageRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		return osc.DeleteImageResponse{}, 400, c.deleteImage(r, in.ImageId)
	case "ReadPublicIps":
		var in osc.ReadPublicIpsRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		return c.readPublicIPs(r, in), 200, nil
	case "LinkPublicIp":
		var in osc.LinkPublicIpRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		id, err := c.linkPublicIP(r, in)
		return osc.LinkPublicIpResponse{LinkPublicIpId: &id}, 400, err
	case "CreateTags":
		var in osc.CreateTagsRequest
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, 400, err
		}
		return osc.CreateTagsResponse{}, 400, c.tag(r, in)
	}
	return nil, 400, fmt.Errorf("FAKE OAPI: action %s is not served", action)
}

func (c *Cloud) startExport(r *Region, kind, src string, e osc.OsuExportToCreate) (*task, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if kind == "snapshot" && r.snapshots[src] == nil || kind == "image" && r.images[src] == nil {
		return nil, fmt.Errorf("%s %s does not exist in %s", kind, src, r.Name)
	}
	if e.OsuBucket != r.oos.Bucket {
		return nil, fmt.Errorf("bucket %s is not this Region's", e.OsuBucket)
	}
	if e.DiskImageFormat != "qcow2" && e.DiskImageFormat != "raw" {
		return nil, fmt.Errorf("DiskImageFormat %q: qcow2 or raw", e.DiskImageFormat)
	}
	t := &task{ID: c.id(kind + "-export"), Kind: kind, Source: src, State: "pending", Bucket: e.OsuBucket, Prefix: e.GetOsuPrefix(), Format: e.DiskImageFormat}
	r.tasks[t.ID] = t
	return t, nil
}

// snapshotOf copies a live task under the lock: the response is encoded
// after the handler returns, while polls (readTasks) update the task.
func (c *Cloud) snapshotOf(t *task) *task {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := *t
	return &cp
}

func snapshotTask(t *task) *osc.SnapshotExportTask {
	return &osc.SnapshotExportTask{TaskId: &t.ID, SnapshotId: &t.Source, State: &t.State, Progress: &t.Progress, Comment: &t.Comment,
		OsuExport: &osc.OsuExportSnapshotExportTask{DiskImageFormat: t.Format, OsuBucket: t.Bucket, OsuPrefix: &t.Prefix}}
}

func imageTask(t *task) *osc.ImageExportTask {
	return &osc.ImageExportTask{TaskId: &t.ID, ImageId: &t.Source, State: &t.State, Progress: &t.Progress, Comment: &t.Comment,
		OsuExport: &osc.OsuExportImageExportTask{DiskImageFormat: t.Format, OsuBucket: t.Bucket, OsuPrefix: &t.Prefix, OsuManifestUrl: &t.ManifestURL}}
}
