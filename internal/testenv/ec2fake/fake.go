package ec2fake

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
)

// Image is an AMI as the fake holds it.
type Image struct {
	ID          string
	Name        string
	Description string
	// State is pending, available or failed.
	State     string
	Created   time.Time
	Snapshots []string
	Tags      map[string]string
	// Source is the image this one was copied from ("" for seeded ones).
	Source string

	token   string
	readyAt time.Time
	fails   bool
}

// Snapshot is an EBS snapshot as the fake holds it.
type Snapshot struct {
	ID          string
	VolumeID    string
	Description string
	// State is pending, completed or error.
	State     string
	Started   time.Time
	SizeGiB   int32
	Encrypted bool
	KMSKey    string
	Tags      map[string]string
	// Source is the snapshot this one was copied from.
	Source string

	readyAt time.Time
	fails   bool
	// copy is true for snapshots made by CopySnapshot, which count against
	// the region's pending-copy limit (those CopyImage makes are counted by
	// their image).
	copy bool
}

// Volume is an EBS volume.
type Volume struct {
	ID      string
	SizeGiB int32
	Tags    map[string]string
}

type region struct {
	images    map[string]*Image
	snapshots map[string]*Snapshot
	volumes   map[string]*Volume
	instances map[string]bool
	addresses map[string]*Address
}

// Server is a running fake. Its zero value is not usable: call Start.
type Server struct {
	// URL is the endpoint to give the SDK (BaseEndpoint) for every region.
	URL string

	mu      sync.Mutex
	regions map[string]*region
	seq     int
	// CopyTime is how long a copy or new snapshot stays pending.
	copyTime   time.Duration
	failCopies int
	throttle   int
	throttled  int
	failNext   map[string][]string
	calls      map[string]int
	maxPending map[string]int
	limit      int
}

// Start runs a fake on a loopback port until the test ends. Copies stay
// pending for copyTime.
func Start(t testing.TB, copyTime time.Duration) *Server {
	s := &Server{regions: map[string]*region{}, copyTime: copyTime, failNext: map[string][]string{},
		calls: map[string]int{}, maxPending: map[string]int{}}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// Throttle makes the next n requests fail with RequestLimitExceeded.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = n
}

// FailNext makes the next call of action fail with the EC2 error code.
// Calls queue: FailNext twice fails the next two calls.
func (s *Server) FailNext(action, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext[action] = append(s.failNext[action], code)
}

// FailCopies makes the next n copies (CopyImage or CopySnapshot) end in the
// failed (image) or error (snapshot) state instead of becoming available.
func (s *Server) FailCopies(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCopies = n
}

// LimitPendingCopies refuses a copy with ResourceLimitExceeded while n copies
// are pending in its destination region (AWS's limit is 20 snapshot copies).
func (s *Server) LimitPendingCopies(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = n
}

// Throttled returns how many requests were answered RequestLimitExceeded.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// Calls returns how many requests named action were answered (successfully
// or not, throttled ones excluded).
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// MaxPending returns the most copies that were ever pending at once in reg.
func (s *Server) MaxPending(reg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxPending[reg]
}

// AddVolume seeds a volume.
func (s *Server) AddVolume(reg string, sizeGiB int32, tags map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &Volume{ID: s.id("vol"), SizeGiB: sizeGiB, Tags: maps.Clone(tags)}
	s.region(reg).volumes[v.ID] = v
	return v.ID
}

// AddSnapshot seeds a completed snapshot started at started.
func (s *Server) AddSnapshot(reg, volumeID string, started time.Time, tags map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := &Snapshot{ID: s.id("snap"), VolumeID: volumeID, State: "completed", Started: started.UTC(), SizeGiB: 8, Tags: maps.Clone(tags)}
	s.region(reg).snapshots[sn.ID] = sn
	return sn.ID
}

// AddImage seeds an available image backed by the given snapshots (seed
// them first with AddSnapshot; several images may share one).
func (s *Server) AddImage(reg, name string, created time.Time, tags map[string]string, snapshots ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	im := &Image{ID: s.id("ami"), Name: name, State: "available", Created: created.UTC(), Snapshots: snapshots, Tags: maps.Clone(tags)}
	s.region(reg).images[im.ID] = im
	return im.ID
}

// Images returns copies of reg's images, sorted by id.
func (s *Server) Images(reg string) []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	return sortedCopies(s.region(reg).images, func(im Image) Image { im.Tags = maps.Clone(im.Tags); return im })
}

// Snapshots returns copies of reg's snapshots, sorted by id.
func (s *Server) Snapshots(reg string) []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	return sortedCopies(s.region(reg).snapshots, func(sn Snapshot) Snapshot { sn.Tags = maps.Clone(sn.Tags); return sn })
}

// sortedCopies returns deep-enough copies of m's values in key (id) order.
func sortedCopies[T any](m map[string]*T, clone func(T) T) []T {
	var out []T
	for _, id := range slices.Sorted(maps.Keys(m)) {
		out = append(out, clone(*m[id]))
	}
	return out
}

func (s *Server) region(name string) *region {
	r, ok := s.regions[name]
	if !ok {
		r = &region{images: map[string]*Image{}, snapshots: map[string]*Snapshot{}, volumes: map[string]*Volume{}}
		s.regions[name] = r
	}
	return r
}

// id returns a new resource id; ids grow, so sorting by id sorts by creation.
func (s *Server) id(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s-%017x", prefix, s.seq)
}

// advance moves pending resources whose time has come to their final state.
func (s *Server) advance() {
	now := time.Now()
	for _, r := range s.regions {
		for _, im := range r.images {
			if im.State == "pending" && !now.Before(im.readyAt) {
				im.State = map[bool]string{false: "available", true: "failed"}[im.fails]
			}
		}
		for _, sn := range r.snapshots {
			if sn.State == "pending" && !now.Before(sn.readyAt) {
				sn.State = map[bool]string{false: "completed", true: "error"}[sn.fails]
			}
		}
	}
}

// pendingCopies counts copies in flight in r.
func (r *region) pendingCopies() int {
	n := 0
	for _, im := range r.images {
		if im.State == "pending" && im.Source != "" {
			n++
		}
	}
	for _, sn := range r.snapshots {
		if sn.State == "pending" && sn.copy {
			n++
		}
	}
	return n
}

// apiError is an EC2 error answer.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func notFound(kind, id string) *apiError {
	return &apiError{400, "Invalid" + kind + ".NotFound", fmt.Sprintf("The %s ID '%s' does not exist", strings.ToLower(kind), id)}
}

// credentialRegion matches the region in a SigV4 Authorization header.
var credentialRegion = regexp.MustCompile(`Credential=[^/]+/[0-9]{8}/([^/]+)/ec2/aws4_request`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, &apiError{400, "MalformedQueryString", err.Error()})
		return
	}
	m := credentialRegion.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		writeError(w, &apiError{401, "AuthFailure", "request is not signed with SigV4 for service ec2"})
		return
	}
	action := r.Form.Get("Action")
	s.mu.Lock()
	body, err := s.handle(m[1], action, formValues(r.Form))
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>%s</requestId>%s</%sResponse>`,
		action, requestID(), body, action)
}

// handle answers one request; s.mu is held.
func (s *Server) handle(reg, action string, f formValues) (string, *apiError) {
	if s.throttle > 0 {
		s.throttle--
		s.throttled++
		return "", &apiError{503, "RequestLimitExceeded", "Request limit exceeded."}
	}
	s.calls[action]++
	if q := s.failNext[action]; len(q) > 0 {
		s.failNext[action] = q[1:]
		return "", &apiError{400, q[0], "injected failure"}
	}
	s.advance()
	r := s.region(reg)
	switch action {
	case "DescribeImages":
		return s.describeImages(r, f)
	case "DescribeSnapshots":
		return s.describeSnapshots(r, f)
	case "DescribeVolumes":
		return s.describeVolumes(r, f)
	case "CopyImage":
		return s.copyImage(reg, f)
	case "CopySnapshot":
		return s.copySnapshot(reg, f)
	case "CreateSnapshot":
		return s.createSnapshot(r, f)
	case "CreateTags":
		return s.createTags(r, f)
	case "DeregisterImage":
		return s.deregisterImage(r, f)
	case "DeleteSnapshot":
		return s.deleteSnapshot(r, f)
	case "DescribeAddresses":
		return s.describeAddresses(r, f)
	case "AssociateAddress":
		return s.associateAddress(r, f)
	}
	return "", &apiError{400, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service (this fake serves only what drkit calls)", action)}
}

func (s *Server) copyImage(dst string, f formValues) (string, *apiError) {
	src, ok := s.regions[f.get("SourceRegion")]
	if !ok {
		return "", &apiError{400, "InvalidParameterValue", "unknown SourceRegion " + f.get("SourceRegion")}
	}
	srcImg, ok := src.images[f.get("SourceImageId")]
	if !ok {
		return "", notFound("AMIID", f.get("SourceImageId"))
	}
	r := s.region(dst)
	if tok := f.get("ClientToken"); tok != "" {
		for _, im := range r.images {
			if im.token == tok {
				return xmlField("imageId", im.ID), nil
			}
		}
	}
	if err := s.checkLimit(dst); err != nil {
		return "", err
	}
	im := &Image{ID: s.id("ami"), Name: f.get("Name"), Description: f.get("Description"), State: "pending",
		Created: time.Now().UTC(), Tags: tagSpec(f, "image"), Source: srcImg.ID, token: f.get("ClientToken")}
	im.readyAt, im.fails = s.schedule()
	for _, sid := range srcImg.Snapshots {
		sn := &Snapshot{ID: s.id("snap"), State: "pending", Started: im.Created, SizeGiB: 8, Source: sid,
			Description: fmt.Sprintf("Copied for DestinationAmi %s from SourceAmi %s for SourceSnapshot %s", im.ID, srcImg.ID, sid),
			Encrypted:   f.get("Encrypted") == "true", KMSKey: f.get("KmsKeyId"), readyAt: im.readyAt, fails: im.fails,
			Tags: map[string]string{}}
		r.snapshots[sn.ID] = sn
		im.Snapshots = append(im.Snapshots, sn.ID)
	}
	r.images[im.ID] = im
	s.notePending(dst)
	return xmlField("imageId", im.ID), nil
}

func (s *Server) copySnapshot(dst string, f formValues) (string, *apiError) {
	src, ok := s.regions[f.get("SourceRegion")]
	if !ok {
		return "", &apiError{400, "InvalidParameterValue", "unknown SourceRegion " + f.get("SourceRegion")}
	}
	srcSnap, ok := src.snapshots[f.get("SourceSnapshotId")]
	if !ok {
		return "", notFound("Snapshot", f.get("SourceSnapshotId"))
	}
	if srcSnap.State != "completed" {
		return "", &apiError{400, "IncorrectState", "snapshot " + srcSnap.ID + " is " + srcSnap.State}
	}
	if err := s.checkLimit(dst); err != nil {
		return "", err
	}
	sn := &Snapshot{ID: s.id("snap"), VolumeID: "vol-ffffffff", Description: f.get("Description"), State: "pending",
		Started: time.Now().UTC(), SizeGiB: srcSnap.SizeGiB, Encrypted: f.get("Encrypted") == "true" || srcSnap.Encrypted,
		KMSKey: f.get("KmsKeyId"), Tags: tagSpec(f, "snapshot"), Source: srcSnap.ID, copy: true}
	sn.readyAt, sn.fails = s.schedule()
	s.region(dst).snapshots[sn.ID] = sn
	s.notePending(dst)
	return xmlField("snapshotId", sn.ID), nil
}

// schedule returns when a new copy becomes final and whether it fails.
func (s *Server) schedule() (time.Time, bool) {
	fails := s.failCopies > 0
	if fails {
		s.failCopies--
	}
	return time.Now().Add(s.copyTime), fails
}

func (s *Server) checkLimit(dst string) *apiError {
	if s.limit > 0 && s.region(dst).pendingCopies() >= s.limit {
		return &apiError{400, "ResourceLimitExceeded", fmt.Sprintf("too many pending copies in %s (limit %d)", dst, s.limit)}
	}
	return nil
}

func (s *Server) notePending(reg string) {
	s.maxPending[reg] = max(s.maxPending[reg], s.region(reg).pendingCopies())
}

func (s *Server) createSnapshot(r *region, f formValues) (string, *apiError) {
	v, ok := r.volumes[f.get("VolumeId")]
	if !ok {
		return "", notFound("Volume", f.get("VolumeId"))
	}
	sn := &Snapshot{ID: s.id("snap"), VolumeID: v.ID, Description: f.get("Description"), State: "pending",
		Started: time.Now().UTC(), SizeGiB: v.SizeGiB, Tags: tagSpec(f, "snapshot")}
	sn.readyAt = time.Now().Add(s.copyTime)
	r.snapshots[sn.ID] = sn
	return snapshotXML(sn, false), nil
}

func (s *Server) createTags(r *region, f formValues) (string, *apiError) {
	tags := map[string]string{}
	for i := 1; f.has(fmt.Sprintf("Tag.%d.Key", i)); i++ {
		tags[f.get(fmt.Sprintf("Tag.%d.Key", i))] = f.get(fmt.Sprintf("Tag.%d.Value", i))
	}
	ids := f.list("ResourceId")
	for _, id := range ids { // all or nothing, as EC2
		_, img := r.images[id]
		_, snap := r.snapshots[id]
		_, vol := r.volumes[id]
		if !img && !snap && !vol {
			return "", &apiError{400, "InvalidID", fmt.Sprintf("The ID '%s' is not valid", id)}
		}
	}
	for _, id := range ids {
		switch {
		case r.images[id] != nil:
			maps.Copy(r.images[id].Tags, tags)
		case r.snapshots[id] != nil:
			maps.Copy(r.snapshots[id].Tags, tags)
		default:
			maps.Copy(r.volumes[id].Tags, tags)
		}
	}
	return xmlField("return", "true"), nil
}

func (s *Server) deregisterImage(r *region, f formValues) (string, *apiError) {
	id := f.get("ImageId")
	if _, ok := r.images[id]; !ok {
		return "", notFound("AMIID", id)
	}
	delete(r.images, id)
	return xmlField("return", "true"), nil
}

func (s *Server) deleteSnapshot(r *region, f formValues) (string, *apiError) {
	id := f.get("SnapshotId")
	if _, ok := r.snapshots[id]; !ok {
		return "", notFound("Snapshot", id)
	}
	for _, im := range r.images {
		if slices.Contains(im.Snapshots, id) {
			return "", &apiError{400, "InvalidSnapshot.InUse", fmt.Sprintf("The snapshot %s is currently in use by %s", id, im.ID)}
		}
	}
	delete(r.snapshots, id)
	return xmlField("return", "true"), nil
}

// formValues reads Query-protocol parameters.
type formValues map[string][]string

func (f formValues) get(k string) string {
	if v := f[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (f formValues) has(k string) bool { return len(f[k]) > 0 }

// list returns prefix.1, prefix.2, ... until one is missing.
func (f formValues) list(prefix string) []string {
	var out []string
	for i := 1; f.has(prefix + "." + strconv.Itoa(i)); i++ {
		out = append(out, f.get(prefix+"."+strconv.Itoa(i)))
	}
	return out
}

// tagSpec returns the tags a TagSpecification gives resources of typ.
func tagSpec(f formValues, typ string) map[string]string {
	tags := map[string]string{}
	for i := 1; f.has(fmt.Sprintf("TagSpecification.%d.ResourceType", i)); i++ {
		if f.get(fmt.Sprintf("TagSpecification.%d.ResourceType", i)) != typ {
			continue
		}
		for j := 1; f.has(fmt.Sprintf("TagSpecification.%d.Tag.%d.Key", i, j)); j++ {
			tags[f.get(fmt.Sprintf("TagSpecification.%d.Tag.%d.Key", i, j))] = f.get(fmt.Sprintf("TagSpecification.%d.Tag.%d.Value", i, j))
		}
	}
	return tags
}

// Options points an SDK client at the fake, with static credentials and a
// short retry backoff (throttling tests retry in milliseconds).
func (s *Server) Options() func(*awsec2.Options) {
	return func(o *awsec2.Options) {
		o.BaseEndpoint = aws.String(s.URL)
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake-secret", "")
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 10
			so.MaxBackoff = 20 * time.Millisecond
		})
	}
}
