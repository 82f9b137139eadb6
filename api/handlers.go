package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/drkit/drkit/binlog"
	"github.com/drkit/drkit/internal/drill"
	"github.com/drkit/drkit/monitor"
	"github.com/drkit/drkit/snapshots"
)

// Cluster is what the API serves about one cluster. drd fills the function
// fields from its components; a nil one means the engine has no such part.
type Cluster struct {
	Name     string    `json:"name"`
	Engine   string    `json:"engine"`
	Region   string    `json:"region"`
	ShipTo   []string  `json:"ship_to"`
	Replicas []Replica `json:"replicas,omitempty"`

	Shipping func(now time.Time) []binlog.RegionProgress                           `json:"-"`
	Sync     func(now time.Time) (binlog.SyncMode, time.Duration, bool)            `json:"-"`
	Server   func() (binlog.ServerSync, bool)                                      `json:"-"`
	Monitor  func() monitor.ClusterState                                           `json:"-"`
	Backups  func(ctx context.Context, region string) ([]snapshots.Summary, error) `json:"-"`
	Backup   func(ctx context.Context) (id string, err error)                      `json:"-"`
}

// Replica names a watched replica (never its DSN).
type Replica struct {
	Name   string `json:"name"`
	Region string `json:"region"`
}

// ClusterStatus is one cluster in GET /api/v1/status.
type ClusterStatus struct {
	Name     string                `json:"name"`
	Engine   string                `json:"engine"`
	Shipping []ShippingStatus      `json:"shipping"`
	Sync     *SyncStatus           `json:"sync,omitempty"`
	ProbedAt *time.Time            `json:"probed_at,omitempty"`
	Servers  []monitor.ServerState `json:"servers"`
}

// ShippingStatus is one region's log-shipping state.
type ShippingStatus struct {
	Region          string    `json:"region"`
	ShippedAt       time.Time `json:"shipped_at"`
	ExposureSeconds float64   `json:"exposure_seconds"`
}

// SyncStatus is a cluster's zero-RPO state: whether its server's commits
// wait for drd, and how long they have waited.
type SyncStatus struct {
	Mode           string  `json:"mode"`
	WaitingSeconds float64 `json:"waiting_seconds"`
	// Stalled: log has waited past sync.timeout (drkit_sync_stalled).
	Stalled bool `json:"stalled"`
	// Server is the server's own view, absent until drd asked it.
	Server *ServerSync `json:"server,omitempty"`
}

// ServerSync is what the server says about its synchronous replication
// (drkit_sync_server_synchronous, drkit_sync_server_waiting_sessions).
type ServerSync struct {
	// Synchronous: the server holds commits for drd; false: they return
	// without it (not zero-RPO).
	Synchronous     bool      `json:"synchronous"`
	WaitingSessions int       `json:"waiting_sessions"`
	AskedAt         time.Time `json:"asked_at"`
}

// Status is GET /api/v1/status.
type Status struct {
	Version  string          `json:"version"`
	Time     time.Time       `json:"time"`
	Clusters []ClusterStatus `json:"clusters"`
}

// RegionBackups is one region in GET /api/v1/clusters/{cluster}/backups.
type RegionBackups struct {
	Region  string              `json:"region"`
	Backups []snapshots.Summary `json:"backups"`
	Error   string              `json:"error,omitempty"`
}

// route is one JSON API endpoint; openapi.json documents each.
type route struct {
	method, path string
	handler      http.HandlerFunc
}

func (s *Server) apiRoutes() []route {
	return []route{
		{"GET", "/api/v1/status", s.read(s.status)},
		{"GET", "/api/v1/clusters", s.read(s.clusters)},
		{"GET", "/api/v1/clusters/{cluster}/backups", s.read(s.backups)},
		{"POST", "/api/v1/clusters/{cluster}/backups", s.act(s.startBackup)},
		{"GET", "/api/v1/jobs", s.read(s.listJobs)},
		{"GET", "/api/v1/jobs/{id}", s.read(s.getJob)},
		{"GET", "/api/v1/schedules", s.read(s.schedules)},
		{"GET", "/api/v1/drills", s.read(s.drills)},
		{"GET", "/api/v1/openapi.json", s.openAPI},
	}
}

func (s *Server) routes(mux *http.ServeMux) {
	for _, r := range s.apiRoutes() {
		mux.HandleFunc(r.method+" "+r.path, r.handler)
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path+" (see /api/v1/openapi.json)")
	})
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	now := time.Now().UTC()
	out := Status{Version: s.opts.Version, Time: now, Clusters: []ClusterStatus{}}
	for _, c := range s.opts.Clusters {
		cs := ClusterStatus{Name: c.Name, Engine: c.Engine, Shipping: []ShippingStatus{}, Servers: []monitor.ServerState{}}
		if c.Shipping != nil {
			for _, p := range c.Shipping(now) {
				cs.Shipping = append(cs.Shipping, ShippingStatus{Region: p.Region, ShippedAt: p.ShippedAt.UTC(), ExposureSeconds: p.Exposure.Seconds()})
			}
		}
		if c.Sync != nil {
			mode, wait, stalled := c.Sync(now)
			cs.Sync = &SyncStatus{Mode: string(mode), WaitingSeconds: wait.Seconds(), Stalled: stalled}
			if c.Server != nil {
				if v, ok := c.Server(); ok {
					cs.Sync.Server = &ServerSync{Synchronous: v.Synchronous, WaitingSessions: v.Waiting, AskedAt: v.At.UTC()}
				}
			}
		}
		if c.Monitor != nil {
			if st := c.Monitor(); !st.At.IsZero() {
				at := st.At.UTC()
				cs.ProbedAt, cs.Servers = &at, st.Servers
			}
		}
		out.Clusters = append(out.Clusters, cs)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) clusters(w http.ResponseWriter, _ *http.Request) {
	out := s.opts.Clusters
	if out == nil {
		out = []Cluster{}
	}
	writeJSON(w, http.StatusOK, out)
}

// cluster finds the path's cluster or answers 404.
func (s *Server) cluster(w http.ResponseWriter, r *http.Request) (Cluster, bool) {
	name := r.PathValue("cluster")
	for _, c := range s.opts.Clusters {
		if c.Name == name {
			return c, true
		}
	}
	writeError(w, http.StatusNotFound, "not_found", "no cluster "+name+" in drd's config")
	return Cluster{}, false
}

func (s *Server) backups(w http.ResponseWriter, r *http.Request) {
	c, ok := s.cluster(w, r)
	if !ok {
		return
	}
	if c.Backups == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "engine "+c.Engine+" has no backups yet")
		return
	}
	regions := c.ShipTo
	if q := r.URL.Query().Get("region"); q != "" {
		if !slices.Contains(c.ShipTo, q) {
			writeError(w, http.StatusNotFound, "not_found", "cluster "+c.Name+" does not ship to region "+q)
			return
		}
		regions = []string{q}
	}
	out := []RegionBackups{}
	for _, region := range regions {
		rb := RegionBackups{Region: region, Backups: []snapshots.Summary{}}
		list, err := c.Backups(r.Context(), region)
		if err != nil {
			rb.Error = err.Error()
		} else if list != nil {
			rb.Backups = list
		}
		out = append(out, rb)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) startBackup(w http.ResponseWriter, r *http.Request) {
	c, ok := s.cluster(w, r)
	if !ok {
		return
	}
	if c.Backup == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "engine "+c.Engine+" has no backups yet")
		return
	}
	for _, j := range s.jobs.all() {
		if j.Kind == "backup" && j.Cluster == c.Name && j.State == "running" {
			writeError(w, http.StatusConflict, "conflict", "backup job "+j.ID+" of cluster "+c.Name+" is still running")
			return
		}
	}
	job := s.jobs.start(s.jobCtx(), "backup", c.Name, c.Backup)
	w.Header().Set("Location", "/api/v1/jobs/"+job.ID)
	writeJSON(w, http.StatusAccepted, job)
}

func (s *Server) listJobs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.jobs.all())
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	job, ok := s.jobs.get(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no job "+r.PathValue("id")+" (jobs are kept in memory until drd restarts)")
		return
	}
	writeJSON(w, http.StatusOK, job)
}

func (s *Server) schedules(w http.ResponseWriter, r *http.Request) {
	out := []snapshots.JobStatus{}
	if s.opts.Schedules != nil {
		out = s.opts.Schedules(r.Context())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) drills(w http.ResponseWriter, r *http.Request) {
	out := []drill.Report{}
	if s.opts.Drills != nil {
		reps, err := s.opts.Drills(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		out = append(out, reps...)
	}
	writeJSON(w, http.StatusOK, out)
}

// apiError is the body of every error answer.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e apiError
	e.Error.Code, e.Error.Message = code, msg
	writeJSON(w, status, e)
}
