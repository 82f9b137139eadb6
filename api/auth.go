package api

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Tokens are the bearer tokens drd accepts, kept as SHA-256 sums so a
// comparison's time depends on neither the token's length nor its content.
type Tokens struct {
	names []string
	sums  [][sha256.Size]byte
}

// Token is one line of a tokens file.
type Token struct {
	Name, Value string
	// Line is where the token is in the file.
	Line int
}

// ReadTokens reads a tokens file: one token per line, "name:token" or just
// "token" (named after its line); blank lines and # comments are skipped.
// drd loads it with LoadTokens; drctl takes its first token to call drd.
func ReadTokens(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("drd.api.tokens_file: %w", err)
	}
	defer f.Close()
	var out []Token
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, tok, ok := strings.Cut(line, ":")
		if !ok {
			name, tok = fmt.Sprintf("line%d", n), line
		}
		out = append(out, Token{Name: name, Value: tok, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("drd.api.tokens_file %s: %w", path, err)
	}
	return out, nil
}

// LoadTokens reads the tokens drd accepts; it refuses an empty file and
// tokens shorter than 16 characters.
func LoadTokens(path string) (*Tokens, error) {
	list, err := ReadTokens(path)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("drd.api.tokens_file %s holds no token", path)
	}
	t := &Tokens{}
	for _, tok := range list {
		if len(tok.Value) < 16 {
			return nil, fmt.Errorf("drd.api.tokens_file %s:%d: token %q is shorter than 16 characters; use a random one (openssl rand -hex 32)", path, tok.Line, tok.Name)
		}
		t.names = append(t.names, tok.Name)
		t.sums = append(t.sums, sha256.Sum256([]byte(tok.Value)))
	}
	return t, nil
}

// match returns the name of the token r carries, or ok false. Every token is
// compared, so the time taken does not say which one nearly matched.
func (t *Tokens) match(r *http.Request) (name string, ok bool) {
	given, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found || given == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(given))
	for i, s := range t.sums {
		if subtle.ConstantTimeCompare(sum[:], s[:]) == 1 {
			name, ok = t.names[i], true
		}
	}
	return name, ok
}

// who returns who made r: a token's name or a client certificate's subject;
// ok is false when r proves neither.
func (s *Server) who(r *http.Request) (string, bool) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return "cert:" + r.TLS.VerifiedChains[0][0].Subject.CommonName, true
	}
	if s.opts.Tokens != nil {
		if name, ok := s.opts.Tokens.match(r); ok {
			return "token:" + name, true
		}
	}
	return "", false
}

// authenticated is whether the listener has any means of authentication.
func (s *Server) authenticated() bool {
	return s.opts.Tokens != nil || (s.opts.TLS != nil && s.opts.TLS.ClientCAs != nil)
}

// read guards read-only endpoints: open when drd has no means of
// authentication, else a token or a client certificate is needed.
func (s *Server) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.authenticated() {
			if _, ok := s.who(r); !ok {
				unauthorized(w)
				return
			}
		}
		h(w, r)
	}
}

// act guards endpoints that change something: always authenticated.
func (s *Server) act(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authenticated() {
			writeError(w, http.StatusForbidden, "forbidden", "actions need authentication: set drd.api.tokens_file (or TLS with a client CA)")
			return
		}
		who, ok := s.who(r)
		if !ok {
			unauthorized(w)
			return
		}
		s.opts.Log.Info("api action", "method", r.Method, "path", r.URL.Path, "by", who)
		h(w, r)
	}
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="drd"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", "send Authorization: Bearer <token> with a token from drd.api.tokens_file")
}
