package outscale

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	osc "github.com/outscale/osc-sdk-go/v2"

	"github.com/drkit/drkit/snapshots/ec2"
	"github.com/drkit/drkit/storage"
)

// The kinds a transfer copies (the Manager's).
const (
	KindSnapshot = ec2.KindSnapshot
	KindImage    = ec2.KindImage
)

// Bucket is a Region's OOS bucket for transfers, at a key prefix (a
// storage/s3 store): the export writes there, the import reads from there.
type Bucket interface {
	storage.Store
	Location() (bucket, prefix string)
	Presign(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// Transfer copies snapshots or images of one entry from one Region to
// another: export to From's bucket, copy to To's bucket, import in To.
type Transfer struct {
	// Job names the entry: it is in the objects' keys, the import's client
	// token or name, and its description.
	Job  string
	Kind ec2.Kind
	// Desc, if set, is what the import is described as (else Description).
	Desc     string
	From, To *Client
	// FromOOS and ToOOS are the two Regions' transfer buckets.
	FromOOS, ToOOS Bucket
	// Format is the disk image format of the export: qcow2 (default) or raw.
	Format string
	// Timeout bounds each wait (export, import); default 12h.
	Timeout time.Duration
	// PollMin and PollMax bound the delay between polls (default 5 s, 2 min).
	PollMin, PollMax time.Duration
	// Progress, if set, is told each stage's progress.
	Progress func(Progress)
	Log      *slog.Logger
}

// Progress is a transfer's stage and how far it is: percent for the
// export and the import, bytes for the copy.
type Progress struct {
	Source string `json:"source"`
	Stage  string `json:"stage"`
	Done   int64  `json:"done"`
	Total  int64  `json:"total"`
}

// Result is one finished transfer.
type Result struct {
	Source string `json:"source"`
	ID     string `json:"id"`
	Bytes  int64  `json:"bytes_copied"`
	// Resumed says a stage found its work done or under way by an earlier
	// run: an export task, objects already copied, an import.
	Resumed []string `json:"resumed,omitempty"`
	// Kept lists the transfer objects left in place after a failure.
	Kept []string `json:"kept,omitempty"`
}

// The object keys of one transfer: <job>/<destination>/<source id>/ in both
// buckets. The destination is part of it: an entry copying to two Regions
// runs two transfers, and one's cleanup must not take the other's objects.
func (t *Transfer) keyPrefix(src string) string { return t.Job + "/" + t.To.Region + "/" + src + "/" }

// Description is what the import is described as: the same words as the
// EC2 copies, so the planner finds a copy by it.
func (t *Transfer) Description(src string) string {
	if t.Desc != "" {
		return t.Desc
	}
	return "drkit:" + t.Job + " copy of " + src + " from " + t.From.Region
}

// token is the import's client token (snapshots) or name (images): one per
// entry, source, destination and attempt (a failed import keeps its token,
// and an idempotent CreateSnapshot would hand it back), hashed so that no
// two entries share one however long their names.
func (t *Transfer) token(src string, attempt int) string {
	h := sha256.Sum256([]byte(t.Job + "\x00" + src + "\x00" + t.To.Region))
	s := "drkit-" + hex.EncodeToString(h[:16])
	if attempt > 1 {
		s += "-" + strconv.Itoa(attempt)
	}
	return s
}

// ImportName is the client token (snapshots) or name (images) of the first
// import of src.
func (t *Transfer) ImportName(src string) string { return t.token(src, 1) }

// maxImportAttempts bounds the tokens a transfer tries after failed imports.
const maxImportAttempts = 5

func (t *Transfer) log() *slog.Logger {
	if t.Log != nil {
		return t.Log
	}
	return slog.Default()
}

func (t *Transfer) progress(p Progress) {
	if t.Progress != nil {
		t.Progress(p)
	}
}

// Run copies src to To and returns the new snapshot's or image's id, once
// it is completed. Every stage first looks for its work done or under way
// (an export task writing to this source's keys, objects already in To's
// bucket, an import with this token or name), so a run after a crash goes
// on where the last one stopped. The transfer objects are deleted from both
// buckets once the import is complete, and kept (Result.Kept) when it
// fails.
func (t *Transfer) Run(ctx context.Context, src string) (Result, error) {
	res := Result{Source: src}
	objects, err := t.export(ctx, src, &res)
	if err != nil {
		return res, err
	}
	if err := t.copyObjects(ctx, src, objects, &res); err != nil {
		return t.kept(ctx, src, res, err)
	}
	if res.ID, err = t.importAndWait(ctx, src, objects, &res); err != nil {
		return t.kept(ctx, src, res, err)
	}
	t.cleanup(ctx, src)
	return res, nil
}

// Finish waits for import id of src, which an earlier run started, and then
// removes the transfer objects (kept, and reported, when it fails).
func (t *Transfer) Finish(ctx context.Context, src, id string) (Result, error) {
	res := Result{Source: src, ID: id, Resumed: []string{"import " + id}}
	if err := t.waitImport(ctx, src, id); err != nil {
		return t.kept(ctx, src, res, err)
	}
	t.cleanup(ctx, src)
	return res, nil
}

// kept lists the transfer objects a failed run leaves for the next.
func (t *Transfer) kept(ctx context.Context, src string, res Result, err error) (Result, error) {
	for _, b := range []Bucket{t.FromOOS, t.ToOOS} {
		for o, lerr := range b.List(context.WithoutCancel(ctx), t.keyPrefix(src)) {
			if lerr != nil {
				break
			}
			res.Kept = append(res.Kept, b.String()+"/"+o.Key)
		}
	}
	if len(res.Kept) > 0 {
		t.log().Warn("transfer failed; its objects are kept for the next run", "job", t.Job, "source", src, "objects", len(res.Kept), "err", err)
		err = fmt.Errorf("%w (its %d transfer object(s) under %s are kept for the next run, which resumes from them)", err, len(res.Kept), t.keyPrefix(src))
	}
	return res, err
}

// export finds or starts the export of src into FromOOS and waits for it;
// it returns the objects it wrote.
func (t *Transfer) export(ctx context.Context, src string, res *Result) ([]storage.ObjectInfo, error) {
	bucket, storePrefix := t.FromOOS.Location()
	prefix := storePrefix + t.keyPrefix(src)
	tasks, err := t.exports(ctx, src)
	if err != nil {
		return nil, err
	}
	// The newest task writing to this transfer's keys: one a crashed run
	// started is waited for, never started twice.
	var task *exportTask
	for i := range tasks {
		if tasks[i].Bucket == bucket && tasks[i].Prefix == prefix && tasks[i].State != "failed" && tasks[i].State != "cancelled" {
			task = &tasks[i]
		}
	}
	if task != nil && task.State == "completed" {
		// OUTSCALE keeps finished tasks: one whose objects a finished
		// transfer removed is history, not this transfer's export.
		if n, err := t.count(ctx, t.FromOOS, src); err != nil {
			return nil, err
		} else if n == 0 {
			task = nil
		}
	}
	if task != nil {
		res.Resumed = append(res.Resumed, "export "+task.ID)
		t.log().Info("export under way or done in an earlier run; waiting for it", "job", t.Job, "source", src, "task", task.ID, "state", task.State)
	} else {
		t.log().Info("exporting", "job", t.Job, "kind", t.Kind, "source", src, "region", t.From.Region, "to", bucket+"/"+prefix)
		nt, err := t.startExport(ctx, src, bucket, prefix)
		if err != nil {
			return nil, fmt.Errorf("export %s %s to OOS bucket %s: %w", t.Kind, src, bucket, err)
		}
		task = &nt
	}
	if err := t.waitExport(ctx, src, task.ID); err != nil {
		return nil, err
	}
	var objects []storage.ObjectInfo
	for o, err := range t.FromOOS.List(ctx, t.keyPrefix(src)) {
		if err != nil {
			return nil, fmt.Errorf("list the export of %s: %w", src, err)
		}
		objects = append(objects, o)
	}
	if len(objects) == 0 {
		return nil, fmt.Errorf("export task %s of %s completed but wrote nothing under %s/%s", task.ID, src, bucket, prefix)
	}
	return objects, nil
}

// sources lists the source ids that have transfer objects of this entry and
// destination in either bucket.
func (t *Transfer) sources(ctx context.Context) ([]string, error) {
	prefix := t.Job + "/" + t.To.Region + "/"
	seen := map[string]bool{}
	for _, b := range []Bucket{t.FromOOS, t.ToOOS} {
		for o, err := range b.List(ctx, prefix) {
			if err != nil {
				return nil, err
			}
			if src, _, ok := strings.Cut(strings.TrimPrefix(o.Key, prefix), "/"); ok {
				seen[src] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// count is how many transfer objects of src b holds.
func (t *Transfer) count(ctx context.Context, b Bucket, src string) (int, error) {
	n := 0
	for _, err := range b.List(ctx, t.keyPrefix(src)) {
		if err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

func (t *Transfer) exports(ctx context.Context, src string) ([]exportTask, error) {
	var all []exportTask
	var err error
	if t.Kind == KindImage {
		all, err = t.From.imageExports(ctx)
	} else {
		all, err = t.From.snapshotExports(ctx, src)
	}
	return slices.DeleteFunc(all, func(e exportTask) bool { return e.Source != src }), err
}

func (t *Transfer) startExport(ctx context.Context, src, bucket, prefix string) (exportTask, error) {
	format := t.Format
	if format == "" {
		format = "qcow2"
	}
	if t.Kind == KindImage {
		return t.From.exportImage(ctx, src, bucket, prefix, format)
	}
	return t.From.exportSnapshot(ctx, src, bucket, prefix, format)
}

// waitExport polls the export task until it completes; a failed task is an
// error carrying its comment.
func (t *Transfer) waitExport(ctx context.Context, src, id string) error {
	return t.poll(ctx, "export of "+src, func(ctx context.Context) (bool, error) {
		tasks, err := t.exports(ctx, src)
		if err != nil {
			return false, err
		}
		i := slices.IndexFunc(tasks, func(e exportTask) bool { return e.ID == id })
		if i < 0 {
			return false, fmt.Errorf("export task %s of %s is gone", id, src)
		}
		e := tasks[i]
		t.progress(Progress{Source: src, Stage: "export", Done: int64(e.Progress), Total: 100})
		switch e.State {
		case "completed":
			return true, nil
		case "failed", "cancelled":
			return false, fmt.Errorf("export task %s of %s %s: %s", id, src, e.State, e.Comment)
		}
		return false, nil
	})
}

// poll calls f with backoff until it is done, fails, or Timeout passes.
func (t *Transfer) poll(ctx context.Context, what string, f func(context.Context) (bool, error)) error {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 12 * time.Hour
	}
	delay, maxDelay := t.PollMin, t.PollMax
	if delay <= 0 {
		delay = 5 * time.Second
	}
	if maxDelay <= 0 {
		maxDelay = 2 * time.Minute
	}
	maxDelay = max(delay, maxDelay)
	deadline := time.Now().Add(timeout)
	for {
		done, err := f(ctx)
		if done || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not done after %s", what, timeout)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, maxDelay)
	}
}

// copyObjects copies the export's objects to ToOOS: an object there of the
// same size is done (a crashed run's), the rest stream through storage/s3's
// resumable multipart (server-side copy cannot cross Regions).
func (t *Transfer) copyObjects(ctx context.Context, src string, objects []storage.ObjectInfo, res *Result) error {
	var total, done int64
	for _, o := range objects {
		total += o.Size
	}
	for _, o := range objects {
		if have, err := t.ToOOS.Stat(ctx, o.Key); err == nil && have.Size == o.Size {
			res.Resumed = append(res.Resumed, "copy "+o.Key)
			done += o.Size
			t.progress(Progress{Source: src, Stage: "copy", Done: done, Total: total})
			continue
		}
		if err := t.copyObject(ctx, o, func(n int64) {
			t.progress(Progress{Source: src, Stage: "copy", Done: done + n, Total: total})
		}); err != nil {
			return fmt.Errorf("copy %s from %s to %s: %w", o.Key, t.FromOOS, t.ToOOS, err)
		}
		done += o.Size
		res.Bytes += o.Size
	}
	return nil
}

func (t *Transfer) copyObject(ctx context.Context, o storage.ObjectInfo, copied func(int64)) error {
	return CopyObject(ctx, t.FromOOS, t.ToOOS, o, copied)
}

// CopyObject streams object o from one store to another (the OOS hop of a
// transfer): a multipart upload of the known size, resumed by storage/s3
// after a crash; copied, if set, is told the bytes read so far.
func CopyObject(ctx context.Context, from, to storage.Store, o storage.ObjectInfo, copied func(int64)) error {
	rc, err := from.Get(ctx, o.Key, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	var r io.Reader = rc
	if copied != nil {
		r = &countingReader{r: rc, f: copied}
	}
	return to.Put(ctx, o.Key, storage.SizedReader{Reader: r, N: o.Size})
}

type countingReader struct {
	r io.Reader
	n int64
	f func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.f(c.n)
	return n, err
}

// importTTL is how long the pre-signed URLs given to the import last.
const importTTL = 7 * 24 * time.Hour

// importAndWait finds or starts the import in To and waits until it is
// complete.
func (t *Transfer) importAndWait(ctx context.Context, src string, objects []storage.ObjectInfo, res *Result) (string, error) {
	var (
		id  string
		err error
	)
	if t.Kind == KindImage {
		id, err = t.importImage(ctx, src, objects, res)
	} else {
		id, err = t.importSnapshot(ctx, src, objects, res)
	}
	if err != nil {
		return "", err
	}
	return id, t.waitImport(ctx, src, id)
}

// waitImport polls import id of src until it is complete.
func (t *Transfer) waitImport(ctx context.Context, src, id string) error {
	return t.poll(ctx, "import of "+src+" as "+id, func(ctx context.Context) (bool, error) {
		state, progress, err := t.importState(ctx, id)
		if err != nil {
			return false, err
		}
		t.progress(Progress{Source: src, Stage: "import", Done: int64(progress), Total: 100})
		switch state {
		case "completed", "available":
			return true, nil
		case "error", "failed":
			return false, fmt.Errorf("import %s of %s in %s: %s", id, src, t.To.Region, state)
		}
		return false, nil
	})
}

func (t *Transfer) importState(ctx context.Context, id string) (string, int32, error) {
	if t.Kind == KindImage {
		im, err := t.To.image(ctx, id)
		p := int32(0)
		if im.GetState() == "available" {
			p = 100
		}
		return im.GetState(), p, err
	}
	sn, err := t.To.snapshot(ctx, id)
	return sn.GetState(), sn.GetProgress(), err
}

// importSnapshot: CreateSnapshot from the copied object, idempotent by its
// client token (a crashed run's import is found by it).
func (t *Transfer) importSnapshot(ctx context.Context, src string, objects []storage.ObjectInfo, res *Result) (string, error) {
	// The first token with no import, or with one not failed (resumed).
	var token string
	for attempt := 1; token == "" && attempt <= maxImportAttempts; attempt++ {
		tok := t.token(src, attempt)
		found, err := t.To.snapshots(ctx, osc.FiltersSnapshot{ClientTokens: &[]string{tok}})
		if err != nil {
			return "", err
		}
		failed := false
		for _, s := range found {
			if st := s.GetState(); st != "error" && st != "deleting" {
				res.Resumed = append(res.Resumed, "import "+s.GetSnapshotId())
				return s.GetSnapshotId(), nil
			}
			failed = true
		}
		if !failed {
			token = tok
		}
	}
	if token == "" {
		return "", fmt.Errorf("%d imports of snapshot %s into %s failed; delete them (drctl snapshots prune) before another", maxImportAttempts, src, t.To.Region)
	}
	if len(objects) != 1 {
		return "", fmt.Errorf("the export of snapshot %s wrote %d objects; an import takes one", src, len(objects))
	}
	source, err := t.From.snapshot(ctx, src)
	if err != nil {
		return "", err
	}
	u, err := t.ToOOS.Presign(ctx, objects[0].Key, importTTL)
	if err != nil {
		return "", err
	}
	size := int64(source.GetVolumeSize()) << 30
	t.log().Info("importing snapshot", "job", t.Job, "source", src, "region", t.To.Region, "object", objects[0].Key)
	sn, err := t.To.importSnapshot(ctx, u, size, token, t.Description(src))
	if err != nil {
		return "", fmt.Errorf("import snapshot %s in %s: %w", src, t.To.Region, err)
	}
	return sn.GetSnapshotId(), nil
}

// manifestName is the rewritten manifest's key (beside the objects).
const manifestName = "drkit-manifest.json"

// importImage: the export's manifest rewritten to point at the copies in
// To's bucket, then CreateImage from it, found again by its name.
func (t *Transfer) importImage(ctx context.Context, src string, objects []storage.ObjectInfo, res *Result) (string, error) {
	var name string
	for attempt := 1; name == "" && attempt <= maxImportAttempts; attempt++ {
		n := t.token(src, attempt)
		found, err := t.To.images(ctx, osc.FiltersImage{ImageNames: &[]string{n}})
		if err != nil {
			return "", err
		}
		failed := false
		for _, im := range found {
			if im.GetState() != "failed" {
				res.Resumed = append(res.Resumed, "import "+im.GetImageId())
				return im.GetImageId(), nil
			}
			failed = true
		}
		if !failed {
			name = n
		}
	}
	if name == "" {
		return "", fmt.Errorf("%d imports of image %s into %s failed; delete them (drctl images prune) before another", maxImportAttempts, src, t.To.Region)
	}
	key, err := t.writeManifest(ctx, src, objects)
	if err != nil {
		return "", err
	}
	u, err := t.ToOOS.Presign(ctx, key, importTTL)
	if err != nil {
		return "", err
	}
	t.log().Info("importing image", "job", t.Job, "source", src, "region", t.To.Region, "manifest", key)
	im, err := t.To.importImage(ctx, u, name, t.Description(src))
	if err != nil {
		return "", fmt.Errorf("import image %s in %s: %w", src, t.To.Region, err)
	}
	return im.GetImageId(), nil
}

// writeManifest finds the export's manifest among its objects (the one
// that decodes as a manifest), rewrites it for To's bucket and stores it.
func (t *Transfer) writeManifest(ctx context.Context, src string, objects []storage.ObjectInfo) (string, error) {
	prefix := t.keyPrefix(src)
	_, storePrefix := t.FromOOS.Location()
	keys := map[string]bool{}
	for _, o := range objects {
		keys[o.Key] = true
	}
	for _, o := range objects {
		if o.Size > maxManifest || strings.HasSuffix(o.Key, "/"+manifestName) || !strings.HasSuffix(o.Key, ".json") && !strings.Contains(o.Key, "manifest") {
			continue
		}
		b, err := readSmall(ctx, t.ToOOS, o.Key)
		if err != nil {
			return "", err
		}
		if snaps, err := manifestSnapshots(b); err != nil || len(snaps) == 0 {
			continue
		}
		out, err := rewriteManifest(b, func(filename string) (string, error) {
			key, err := keyIn(filename, storePrefix, prefix)
			if err != nil {
				return "", err
			}
			if !keys[key] {
				return "", fmt.Errorf("%s is not among the exported objects", key)
			}
			return t.ToOOS.Presign(ctx, key, importTTL)
		})
		if err != nil {
			return "", fmt.Errorf("image %s: %w", src, err)
		}
		key := prefix + manifestName
		if err := t.ToOOS.Put(ctx, key, strings.NewReader(string(out))); err != nil {
			return "", err
		}
		return key, nil
	}
	return "", fmt.Errorf("the export of image %s holds no manifest", src)
}

// readSmall reads an object of at most maxManifest bytes.
func readSmall(ctx context.Context, b Bucket, key string) ([]byte, error) {
	rc, err := b.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	out, err := io.ReadAll(io.LimitReader(rc, maxManifest+1))
	if err == nil && len(out) > maxManifest {
		err = fmt.Errorf("%s: more than %d bytes", key, maxManifest)
	}
	return out, err
}

// cleanup deletes the transfer objects from both buckets: the import has
// read them. A failure only leaves them for the next run.
func (t *Transfer) cleanup(ctx context.Context, src string) {
	for _, b := range []Bucket{t.FromOOS, t.ToOOS} {
		var keys []string
		for o, err := range b.List(ctx, t.keyPrefix(src)) {
			if err != nil {
				break
			}
			keys = append(keys, o.Key)
		}
		if err := b.Delete(ctx, keys...); err != nil {
			t.log().Warn("could not delete the transfer objects; the next run retries", "bucket", b.String(), "source", src, "err", err)
		}
	}
	t.progress(Progress{Source: src, Stage: "cleanup", Done: 1, Total: 1})
}
