package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drkit/drkit/api"
	"github.com/drkit/drkit/internal/config"
)

// drdClient talks to a running drd's JSON API.
type drdClient struct {
	base  string
	token string
	http  *http.Client
}

// newDrdClient derives drd's URL and credentials from the config: the token
// from $DRKIT_API_TOKEN, else the first one of drd.api.tokens_file when this
// user may read it.
func newDrdClient(cfg *config.Config) *drdClient {
	host, port, _ := net.SplitHostPort(cfg.Drd.Listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c := &drdClient{base: "http://" + net.JoinHostPort(host, port), token: os.Getenv("DRKIT_API_TOKEN"),
		http: &http.Client{Timeout: 3 * time.Second}}
	if c.token == "" && cfg.Drd.API.TokensFile != "" {
		c.token = firstToken(cfg.Drd.API.TokensFile)
	}
	if t := cfg.Drd.API.TLS; t != nil {
		c.base = "https://" + strings.TrimPrefix(c.base, "http://")
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if pem, err := os.ReadFile(t.CertFile); err == nil {
			pool.AppendCertsFromPEM(pem) // a self-signed drd certificate
		}
		c.http.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return c
}

// firstToken returns the first token of a tokens file, or "" when this user
// cannot read it.
func firstToken(path string) string {
	list, err := api.ReadTokens(path)
	if err != nil || len(list) == 0 {
		return ""
	}
	return list[0].Value
}

// get fetches path into out; a JSON error body becomes the error's text.
func (c *drdClient) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("drd at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("drd at %s: %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("drd at %s: %s %s: %s", c.base, resp.Status, e.Error.Code, e.Error.Message)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("drd at %s: decode %s: %w", c.base, path, err)
	}
	return nil
}

// printDrdStatus prints the API's status: shipping per region, then every
// probed server.
func printDrdStatus(g *globals, st api.Status, only string) error {
	var clusters []api.ClusterStatus
	for _, c := range st.Clusters {
		if only == "" || c.Name == only {
			clusters = append(clusters, c)
		}
	}
	if g.json {
		return printList(g, clusters)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tREGION\tLOG DURABLE AT\tEXPOSURE S")
	for _, c := range clusters {
		for _, s := range c.Shipping {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\n", c.Name, s.Region, s.ShippedAt.Format(time.RFC3339), s.ExposureSeconds)
		}
	}
	for _, c := range clusters {
		if y := c.Sync; y != nil && y.Mode != "off" {
			state := "commits wait for the sync regions"
			if y.Stalled {
				state = "STALLED: commits have waited past sync.timeout"
			}
			if v := y.Server; v != nil {
				if v.Synchronous {
					state += fmt.Sprintf("; server: %d sessions waiting", v.WaitingSessions)
				} else {
					state = "SERVER DOES NOT WAIT FOR DRD: commits return without the regions (not zero-RPO)"
				}
			}
			fmt.Fprintf(tw, "%s\tsync %s\twaiting %.1fs\t%s\n", c.Name, y.Mode, y.WaitingSeconds, state)
		}
	}
	fmt.Fprintln(tw, "\nCLUSTER\tSERVER\tREGION\tUP\tLINK\tIN SYNC\tSTATE\tLAG S\tLAG BYTES\tNOTE")
	for _, c := range clusters {
		for _, s := range c.Servers {
			name, link, sync, state := "primary", "-", "-", "-"
			if s.Replica != "" {
				name, link, state = s.Replica, yesNo(s.LinkUp), s.State
				sync = yesNo(s.InSync && (s.DriftChunks == nil || *s.DriftChunks == 0))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, name, s.Region, yesNo(s.Up), link, sync, state,
				num(s.LagSeconds, "%.1f"), num(s.LagBytes, "%.0f"), s.Error)
		}
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func num(v *float64, format string) string {
	if v == nil {
		return "?"
	}
	return fmt.Sprintf(format, *v)
}
