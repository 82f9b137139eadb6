package oapifake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	osc "github.com/outscale/osc-sdk-go/v2"

	"github.com/drkit/drkit/storage"
)

// readTasks advances every unfinished export task of kind by one poll and
// returns copies of them all, oldest first. A task completes after Steps
// polls and then writes its objects (outside the lock: they may be large).
func (c *Cloud) readTasks(ctx context.Context, r *Region, kind string) []task {
	c.mu.Lock()
	var done []*task
	var ids []string
	for id, t := range r.tasks {
		if t.Kind != kind {
			continue
		}
		ids = append(ids, id)
		if t.State == "completed" || t.State == "failed" {
			continue
		}
		t.polls++
		t.State = "active"
		t.Progress = int32(min(99, 100*t.polls/c.steps()))
		if t.polls >= c.steps() {
			if c.FailExport[t.Source] {
				t.State, t.Comment = "failed", "FAKE: the export failed"
			} else {
				done = append(done, t)
			}
		}
	}
	c.mu.Unlock()
	for _, t := range done {
		err := c.writeExport(ctx, r, t)
		c.mu.Lock()
		if err != nil {
			t.State, t.Comment = "failed", "FAKE: writing the export: "+err.Error()
		} else {
			t.State, t.Progress = "completed", 100
		}
		c.mu.Unlock()
	}
	slices.Sort(ids)
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]task, 0, len(ids))
	for _, id := range ids {
		out = append(out, *r.tasks[id])
	}
	return out
}

// writeExport writes a completed task's objects under its prefix: one
// object per snapshot (<prefix><snapshot>.<format>.gz), and for an image
// its manifest (<prefix><image>.manifest.json) with pre-signed URLs.
func (c *Cloud) writeExport(ctx context.Context, r *Region, t *task) error {
	key := func(snap string) string { return t.Prefix + snap + "." + t.Format + ".gz" }
	if t.Kind == "snapshot" {
		return r.oos.Store.Put(ctx, key(t.Source), storage.SizedReader{Reader: content(t.Source, c.exportSize()), N: c.exportSize()})
	}
	c.mu.Lock()
	snaps := slices.Clone(r.images[t.Source].Snapshots)
	name := r.images[t.Source].Name
	c.mu.Unlock()
	type entry struct {
		Ordering       int
		VolumeType     string
		PreSignedUrl   string
		Filename       string
		CompressedSize int64
		Device         string
		Size           int64
	}
	var entries []entry
	for i, s := range snaps {
		if err := r.oos.Store.Put(ctx, key(s), storage.SizedReader{Reader: content(s, c.exportSize()), N: c.exportSize()}); err != nil {
			return err
		}
		u, err := r.oos.Presign(ctx, key(s))
		if err != nil {
			return err
		}
		entries = append(entries, entry{Ordering: i + 1, VolumeType: "standard", PreSignedUrl: u, Filename: key(s),
			CompressedSize: c.exportSize(), Device: fmt.Sprintf("/dev/sd%c1", 'a'+i), Size: 10 << 30})
	}
	m, _ := json.Marshal(map[string]any{"Version": 1, "Image": map[string]any{"Name": name, "Snapshots": entries,
		"Architecture": "x86_64", "Type": "machine", "Description": "FAKE export of " + t.Source}})
	mkey := t.Prefix + t.Source + ".manifest.json"
	if err := r.oos.Store.Put(ctx, mkey, strings.NewReader(string(m))); err != nil {
		return err
	}
	u, err := r.oos.Presign(ctx, mkey)
	if err != nil {
		return err
	}
	c.mu.Lock()
	t.ManifestURL = u
	c.mu.Unlock()
	return nil
}

// fetch reads a pre-signed URL, which must point at the Region's OOS, and
// returns its size and SHA-256.
func (r *Region) fetch(ctx context.Context, raw string) (int64, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return 0, "", err
	}
	if u.Host != r.oos.Host {
		return 0, "", fmt.Errorf("%s is not in Region %s's OOS (%s)", u.Host, r.Name, r.oos.Host)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, "", fmt.Errorf("GET the pre-signed URL: HTTP %d", resp.StatusCode)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// importSnapshot creates a pending snapshot from a file, idempotent by
// client token; it completes after Steps polls (ReadSnapshots).
func (c *Cloud) importSnapshot(r *Region, in osc.CreateSnapshotRequest) (*osc.Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := in.GetVolumeId(); v != "" {
		if _, ok := r.volumes[v]; !ok {
			return nil, fmt.Errorf("%w: volume %s", errNotFound, v)
		}
		s := &Snapshot{ID: c.id("snap"), State: "pending", Volume: v, Description: in.GetDescription(), SizeGiB: 10, Created: time.Now()}
		s.Digest = digestOf(s.ID, c.exportSize())
		r.snapshots[s.ID] = s
		return apiSnapshot(s), nil
	}
	if in.GetFileLocation() == "" || in.GetSnapshotSize() <= 0 {
		return nil, fmt.Errorf("FAKE: CreateSnapshot from a volume (VolumeId) or a file (FileLocation, SnapshotSize) only")
	}
	if tok := in.GetClientToken(); tok != "" {
		for _, s := range r.snapshots {
			if s.Token == tok {
				return apiSnapshot(s), nil
			}
		}
	}
	s := &Snapshot{ID: c.id("snap"), State: "pending", Token: in.GetClientToken(), Description: in.GetDescription(),
		SizeGiB: int32(in.GetSnapshotSize() >> 30), fileURL: in.GetFileLocation(), Created: time.Now()}
	r.snapshots[s.ID] = s
	return apiSnapshot(s), nil
}

// importImage creates a pending image from a manifest; names are unique.
func (c *Cloud) importImage(r *Region, in osc.CreateImageRequest) (*osc.Image, int, error) {
	if in.GetFileLocation() == "" || in.GetImageName() == "" {
		return nil, 400, fmt.Errorf("FAKE: only CreateImage from a manifest (FileLocation, ImageName) is served")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, im := range r.images {
		if owner(im.Owner) == Account && im.Name == in.GetImageName() {
			return nil, 409, fmt.Errorf("an image named %s exists", im.Name)
		}
	}
	im := &Image{ID: c.id("ami"), Name: in.GetImageName(), State: "pending", Description: in.GetDescription(), fileURL: in.GetFileLocation(), Created: time.Now()}
	r.images[im.ID] = im
	return apiImage(im), 200, nil
}

func apiSnapshot(s *Snapshot) *osc.Snapshot {
	created, acct := s.Created.UTC().Format(time.RFC3339), owner(s.Owner)
	out := &osc.Snapshot{AccountId: &acct, SnapshotId: &s.ID, State: &s.State, Progress: &s.Progress, Description: &s.Description, VolumeSize: &s.SizeGiB,
		ClientToken: &s.Token, VolumeId: &s.Volume, Tags: apiTags(s.Tags), CreationDate: &created}
	return out
}

func apiImage(im *Image) *osc.Image {
	var bdm []osc.BlockDeviceMappingImage
	for _, s := range im.Snapshots {
		bdm = append(bdm, osc.BlockDeviceMappingImage{Bsu: &osc.BsuToCreate{SnapshotId: &s}})
	}
	created, acct := im.Created.UTC().Format(time.RFC3339), owner(im.Owner)
	return &osc.Image{AccountId: &acct, ImageId: &im.ID, ImageName: &im.Name, State: &im.State, Description: &im.Description, BlockDeviceMappings: &bdm,
		Tags: apiTags(im.Tags), CreationDate: &created}
}

func apiTags(m map[string]string) *[]osc.ResourceTag {
	var out []osc.ResourceTag
	for k, v := range m {
		out = append(out, osc.ResourceTag{Key: k, Value: v})
	}
	return &out
}

// readSnapshots advances pending imports by one poll; one that completes
// reads its file through the pre-signed URL.
func (c *Cloud) readSnapshots(ctx context.Context, r *Region, in osc.ReadSnapshotsRequest) osc.ReadSnapshotsResponse {
	f := in.GetFilters()
	c.mu.Lock()
	var out []*Snapshot
	var due []*Snapshot
	for _, s := range r.snapshots {
		if f.SnapshotIds != nil && !slices.Contains(*f.SnapshotIds, s.ID) || f.ClientTokens != nil && !slices.Contains(*f.ClientTokens, s.Token) ||
			f.AccountIds != nil && !slices.Contains(*f.AccountIds, owner(s.Owner)) ||
			!hasTags(s.Tags, f.Tags) || f.States != nil && !slices.Contains(*f.States, s.State) {
			continue
		}
		if s.State == "pending" {
			s.polls++
			s.Progress = int32(min(99, 100*s.polls/c.steps()))
			if s.polls >= c.steps() {
				due = append(due, s)
			}
		}
		out = append(out, s)
	}
	c.mu.Unlock()
	for _, s := range due {
		if s.fileURL == "" { // a snapshot of a volume
			c.mu.Lock()
			s.State, s.Progress = "completed", 100
			c.mu.Unlock()
			continue
		}
		_, digest, err := r.fetch(ctx, s.fileURL)
		c.mu.Lock()
		if err != nil {
			s.State, s.Description = "error", s.Description+" (FAKE: "+err.Error()+")"
		} else {
			s.State, s.Progress, s.Digest = "completed", 100, digest
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	list := make([]osc.Snapshot, 0, len(out))
	for _, s := range out {
		list = append(list, *apiSnapshot(s))
	}
	return osc.ReadSnapshotsResponse{Snapshots: &list}
}

// readImages advances pending imports by one poll; one that completes
// reads its manifest and every snapshot it names through their URLs.
func (c *Cloud) readImages(ctx context.Context, r *Region, in osc.ReadImagesRequest) osc.ReadImagesResponse {
	f := in.GetFilters()
	c.mu.Lock()
	var out, due []*Image
	for _, im := range r.images {
		if f.ImageIds != nil && !slices.Contains(*f.ImageIds, im.ID) || f.ImageNames != nil && !slices.Contains(*f.ImageNames, im.Name) ||
			f.AccountIds != nil && !slices.Contains(*f.AccountIds, owner(im.Owner)) ||
			!hasTags(im.Tags, f.Tags) || f.States != nil && !slices.Contains(*f.States, im.State) {
			continue
		}
		if im.State == "pending" {
			im.polls++
			if im.polls >= c.steps() {
				due = append(due, im)
			}
		}
		out = append(out, im)
	}
	c.mu.Unlock()
	for _, im := range due {
		snaps, err := c.importManifest(ctx, r, im.fileURL)
		c.mu.Lock()
		if err != nil {
			im.State, im.Description = "failed", im.Description+" (FAKE: "+err.Error()+")"
		} else {
			im.State, im.Snapshots = "available", snaps
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	list := make([]osc.Image, 0, len(out))
	for _, im := range out {
		list = append(list, *apiImage(im))
	}
	return osc.ReadImagesResponse{Images: &list}
}

// importManifest reads a manifest and its snapshots, all of which must be
// in the Region's OOS, and makes the image's snapshots.
func (c *Cloud) importManifest(ctx context.Context, r *Region, manifestURL string) ([]string, error) {
	u, err := url.Parse(manifestURL)
	if err != nil || u.Host != r.oos.Host {
		return nil, fmt.Errorf("manifest URL not in Region %s's OOS", r.Name)
	}
	resp, err := http.Get(manifestURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m struct {
		Image struct {
			Snapshots []struct {
				PreSignedUrl string
				Size         int64
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var ids []string
	for _, e := range m.Image.Snapshots {
		_, digest, err := r.fetch(ctx, e.PreSignedUrl)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		s := &Snapshot{ID: c.id("snap"), State: "completed", Progress: 100, SizeGiB: int32(e.Size >> 30), Digest: digest, Created: time.Now()}
		r.snapshots[s.ID] = s
		c.mu.Unlock()
		ids = append(ids, s.ID)
	}
	return ids, nil
}

func (c *Cloud) tag(r *Region, in osc.CreateTagsRequest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range in.ResourceIds {
		var tags *map[string]string
		if s, ok := r.snapshots[id]; ok {
			tags = &s.Tags
		} else if im, ok := r.images[id]; ok {
			tags = &im.Tags
		} else {
			return fmt.Errorf("resource %s does not exist in %s", id, r.Name)
		}
		if *tags == nil {
			*tags = map[string]string{}
		}
		for _, t := range in.Tags {
			(*tags)[t.Key] = t.Value
		}
	}
	return nil
}

// errNotFound is answered as OAPI's InvalidResource.
var errNotFound = errors.New("FAKE: no such resource")

// hasTags: every "key=value" of the filter is among tags.
func hasTags(tags map[string]string, filter *[]string) bool {
	if filter == nil {
		return true
	}
	for _, kv := range *filter {
		k, v, _ := strings.Cut(kv, "=")
		if tags[k] != v {
			return false
		}
	}
	return true
}

func (c *Cloud) readVolumes(r *Region, in osc.ReadVolumesRequest) osc.ReadVolumesResponse {
	f := in.GetFilters()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []osc.Volume
	for id, tags := range r.volumes {
		if hasTags(tags, f.Tags) {
			out = append(out, osc.Volume{VolumeId: &id, Tags: apiTags(tags)})
		}
	}
	return osc.ReadVolumesResponse{Volumes: &out}
}

func (c *Cloud) deleteSnapshot(r *Region, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := r.snapshots[id]; !ok {
		return fmt.Errorf("%w: snapshot %s", errNotFound, id)
	}
	for _, im := range r.images {
		if slices.Contains(im.Snapshots, id) {
			return fmt.Errorf("snapshot %s is used by image %s", id, im.ID)
		}
	}
	delete(r.snapshots, id)
	return nil
}

func (c *Cloud) deleteImage(r *Region, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := r.images[id]; !ok {
		return fmt.Errorf("%w: image %s", errNotFound, id)
	}
	delete(r.images, id)
	return nil
}

func (c *Cloud) readPublicIPs(r *Region, in osc.ReadPublicIpsRequest) osc.ReadPublicIpsResponse {
	f := in.GetFilters()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []osc.PublicIp
	for ip, vm := range r.publicIPs {
		if f.PublicIps != nil && !slices.Contains(*f.PublicIps, ip) {
			continue
		}
		p := osc.PublicIp{PublicIp: &ip}
		if vm != "" {
			p.SetVmId(vm)
		}
		out = append(out, p)
	}
	return osc.ReadPublicIpsResponse{PublicIps: &out}
}

// linkPublicIP links an allocated IP to a VM; one linked elsewhere moves
// only with AllowRelink.
func (c *Cloud) linkPublicIP(r *Region, in osc.LinkPublicIpRequest) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ip, vm := in.GetPublicIp(), in.GetVmId()
	cur, ok := r.publicIPs[ip]
	switch {
	case !ok:
		return "", fmt.Errorf("%w: public IP %s", errNotFound, ip)
	case !r.vms[vm]:
		return "", fmt.Errorf("%w: VM %s", errNotFound, vm)
	case cur != "" && cur != vm && !in.GetAllowRelink():
		return "", fmt.Errorf("public IP %s is linked to %s (AllowRelink not set)", ip, cur)
	}
	r.publicIPs[ip] = vm
	return c.id("eipassoc"), nil
}

// owner is a resource's account.
func owner(o string) string {
	if o == "" {
		return Account
	}
	return o
}
