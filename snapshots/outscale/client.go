package outscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	osc "github.com/outscale/osc-sdk-go/v2"
)

// Endpoint is a Region's OAPI endpoint.
func Endpoint(region string) string { return "https://api." + region + ".outscale.com/api/v1" }

// OOSEndpoint is a Region's OOS (object storage) endpoint.
func OOSEndpoint(region string) string { return "https://oos." + region + ".outscale.com" }

// Client is the OAPI of one Region: osc-sdk-go's client with the access
// key/secret key signature, and retries of throttled and failed-over calls.
type Client struct {
	Region string
	api    *osc.APIClient
	auth   osc.AWSv4
	log    *slog.Logger
	// backoff bounds the wait between retries of one call.
	backoffMin, backoffMax time.Duration
	attempts               int

	accountMu sync.Mutex
	account   string
}

// accountID is the caller's account (ReadAccounts), read once: every read
// of snapshots and images is limited to it, as EC2's owner "self" is — OAPI
// also lists other accounts' public resources, and one named or described
// like a drkit copy must never be taken for one.
func (c *Client) accountID(ctx context.Context) (string, error) {
	c.accountMu.Lock()
	defer c.accountMu.Unlock()
	if c.account != "" {
		return c.account, nil
	}
	resp, err := call(ctx, c, "ReadAccounts", func(ctx context.Context) (osc.ReadAccountsResponse, *http.Response, error) {
		return c.api.AccountApi.ReadAccounts(ctx).ReadAccountsRequest(osc.ReadAccountsRequest{}).Execute()
	})
	if err != nil {
		return "", err
	}
	accounts := resp.GetAccounts()
	if len(accounts) != 1 || accounts[0].GetAccountId() == "" {
		return "", fmt.Errorf("OAPI ReadAccounts in %s returned %d accounts; want the caller's", c.Region, len(accounts))
	}
	c.account = accounts[0].GetAccountId()
	return c.account, nil
}

// NewClient returns the OAPI client of region at endpoint (Endpoint(region)
// unless a test or a private endpoint says otherwise).
func NewClient(region, endpoint, accessKey, secretKey string, hc *http.Client, log *slog.Logger) *Client {
	cfg := osc.NewConfiguration()
	cfg.Servers = osc.ServerConfigurations{{URL: strings.TrimSuffix(endpoint, "/")}}
	cfg.UserAgent = "drkit"
	if hc != nil {
		cfg.HTTPClient = hc
	}
	if log == nil {
		log = slog.Default()
	}
	return &Client{Region: region, api: osc.NewAPIClient(cfg), auth: osc.AWSv4{AccessKey: accessKey, SecretKey: secretKey},
		log: log, backoffMin: 500 * time.Millisecond, backoffMax: 30 * time.Second, attempts: 8}
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, osc.ContextAWSv4, c.auth)
}

// APIError is an error OAPI answered: its HTTP status and first error.
type APIError struct {
	Op     string
	Status int
	Code   string
	Type   string
	Detail string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("OAPI %s: HTTP %d", e.Op, e.Status)
	if e.Type != "" || e.Code != "" {
		msg += fmt.Sprintf(": %s (code %s)", e.Type, e.Code)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += " (check the access key and secret key, and that the EIM policy allows " + e.Op + ")"
	}
	return msg
}

// retryable: throttling (429, 503) and server errors (5xx).
func (e *APIError) retryable() bool { return e.Status == 429 || e.Status >= 500 }

// throttled: the request was refused for its rate (429, 503).
func (e *APIError) throttled() bool { return e.Status == 429 || e.Status == 503 }

// call runs one idempotent OAPI call (a read, or a write that a retry cannot
// do twice), retrying throttled and transient failures with exponential
// backoff and jitter.
func call[T any](ctx context.Context, c *Client, op string, f func(context.Context) (T, *http.Response, error)) (T, error) {
	return callRetrying(ctx, c, op, f, (*APIError).retryable, true)
}

// create runs a call that starts something (an export task, a snapshot of
// a volume, an image) and that a retry could start twice: it is retried
// only when throttled (429, 503: refused before any work), never after a
// 5xx or a lost connection, where the server may have done it. The caller's
// next run finds what it started by its keys, token or name.
func create[T any](ctx context.Context, c *Client, op string, f func(context.Context) (T, *http.Response, error)) (T, error) {
	return callRetrying(ctx, c, op, f, (*APIError).throttled, false)
}

func callRetrying[T any](ctx context.Context, c *Client, op string, f func(context.Context) (T, *http.Response, error), again func(*APIError) bool, retryNetwork bool) (T, error) {
	delay := c.backoffMin
	for attempt := 1; ; attempt++ {
		out, resp, err := f(c.ctx(ctx))
		if err == nil {
			return out, nil
		}
		err = apiError(op, resp, err)
		var ae *APIError
		transient := errors.As(err, &ae) && again(ae) || retryNetwork && resp == nil && ctx.Err() == nil
		if !transient || attempt >= c.attempts {
			return out, err
		}
		c.log.Debug("OAPI call throttled or failed; retrying", "op", op, "region", c.Region, "attempt", attempt, "err", err)
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return out, errors.Join(err, ctx.Err())
		}
		delay = min(2*delay, c.backoffMax)
	}
}

// apiError turns the SDK's error into an APIError when OAPI answered.
func apiError(op string, resp *http.Response, err error) error {
	if resp == nil {
		return fmt.Errorf("OAPI %s: %w", op, err)
	}
	ae := &APIError{Op: op, Status: resp.StatusCode}
	var ge osc.GenericOpenAPIError
	if errors.As(err, &ge) {
		if m, ok := ge.Model().(osc.ErrorResponse); ok && m.Errors != nil && len(*m.Errors) > 0 {
			e := (*m.Errors)[0]
			ae.Code, ae.Type, ae.Detail = e.GetCode(), e.GetType(), e.GetDetails()
		}
	}
	return ae
}

// SetBackoff sets the bounds of the wait between retries (tests).
func (c *Client) SetBackoff(minD, maxD time.Duration) { c.backoffMin, c.backoffMax = minD, maxD }
