package api

import (
	_ "embed"
	"net/http"
)

// openAPIDoc documents the JSON API; TestOpenAPIMatchesRoutes keeps it equal
// to the routes.
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}
