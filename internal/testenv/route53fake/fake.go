// Package route53fake is a FAKE of the Amazon Route 53 API, for tests only:
// Route 53 cannot run on a test machine. It speaks what aws-sdk-go-v2's
// service/route53 client sends for ChangeResourceRecordSets (UPSERT, CREATE,
// DELETE of simple records) and GetChange (PENDING on submission, INSYNC
// from the first GetChange on), with Route 53's XML error document for an
// unknown zone and a bad change batch.
package route53fake

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a fake Route 53 endpoint holding hosted zones.
type Server struct {
	URL string

	mu      sync.Mutex
	zones   map[string]map[string][]string // zone -> "name TYPE" -> values
	changes map[string]string              // id -> status
	seq     int
}

// Start serves a fake Route 53 with the given hosted zone ids until the test ends.
func Start(t testing.TB, zones ...string) *Server {
	s := &Server{zones: map[string]map[string][]string{}, changes: map[string]string{}}
	for _, z := range zones {
		s.zones[z] = map[string][]string{}
	}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// Record returns the values of a record ("db.example.com.", "CNAME").
func (s *Server) Record(zone, name, typ string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.zones[zone][fqdn(name)+" "+typ]
}

func fqdn(name string) string { return strings.TrimSuffix(name, ".") + "." }

type changeRequest struct {
	Changes []struct {
		Action string `xml:"Action"`
		Set    struct {
			Name   string   `xml:"Name"`
			Type   string   `xml:"Type"`
			TTL    int64    `xml:"TTL"`
			Values []string `xml:"ResourceRecords>ResourceRecord>Value"`
		} `xml:"ResourceRecordSet"`
	} `xml:"ChangeBatch>Changes>Change"`
}

type changeInfo struct {
	XMLName     xml.Name `xml:"ChangeInfo"`
	ID          string   `xml:"Id"`
	Status      string   `xml:"Status"`
	SubmittedAt string   `xml:"SubmittedAt"`
}

const ns = "https://route53.amazonaws.com/doc/2013-04-01/"

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/2013-04-01/")
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(path, "hostedzone/") && strings.HasSuffix(strings.TrimSuffix(path, "/"), "/rrset"):
		zone := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(path, "hostedzone/"), "/"), "/rrset")
		s.change(w, r, zone)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "change/"):
		s.getChange(w, strings.TrimPrefix(path, "change/"))
	default:
		fail(w, http.StatusBadRequest, "InvalidAction", "the fake does not serve "+r.Method+" "+r.URL.Path)
	}
}

func (s *Server) change(w http.ResponseWriter, r *http.Request, zone string) {
	var req changeRequest
	if err := xml.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "InvalidInput", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	records, ok := s.zones[zone]
	if !ok {
		fail(w, http.StatusNotFound, "NoSuchHostedZone", "No hosted zone found with ID: "+zone)
		return
	}
	for _, c := range req.Changes {
		key := fqdn(c.Set.Name) + " " + c.Set.Type
		switch c.Action {
		case "UPSERT":
			records[key] = c.Set.Values
		case "CREATE":
			if _, exists := records[key]; exists {
				fail(w, http.StatusBadRequest, "InvalidChangeBatch", "record "+key+" already exists")
				return
			}
			records[key] = c.Set.Values
		case "DELETE":
			delete(records, key)
		default:
			fail(w, http.StatusBadRequest, "InvalidChangeBatch", "unknown action "+c.Action)
			return
		}
	}
	s.seq++
	id := fmt.Sprintf("C%06d", s.seq)
	s.changes[id] = "PENDING"
	reply(w, "ChangeResourceRecordSetsResponse", changeInfo{ID: "/change/" + id, Status: "PENDING", SubmittedAt: time.Now().UTC().Format(time.RFC3339)})
}

func (s *Server) getChange(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	status, ok := s.changes[id]
	if !ok {
		fail(w, http.StatusNotFound, "NoSuchChange", "no change "+id)
		return
	}
	s.changes[id] = "INSYNC" // propagated by the next look
	reply(w, "GetChangeResponse", changeInfo{ID: "/change/" + id, Status: status, SubmittedAt: time.Now().UTC().Format(time.RFC3339)})
}

func reply(w http.ResponseWriter, root string, ci changeInfo) {
	w.Header().Set("Content-Type", "text/xml")
	b, _ := xml.Marshal(ci)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><%s xmlns="%s">%s</%s>`, root, ns, b, root)
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0"?><ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>fake</RequestId></ErrorResponse>`,
		ns, code, msg)
}
