// Package influx connects carehub to InfluxDB through its v2 HTTP API, on
// InfluxDB 2.x or on 1.8 with its v2 compatibility endpoints (contract §2).
// It creates the database or bucket that is missing, encodes points as
// line protocol, writes batches with errors classified for retry, and
// builds Flux queries from validated literals only.
package influx

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/rs/zerolog"
)

// Options say where InfluxDB is and what to write to.
type Options struct {
	URL    string
	Token  string // 2.x: API token; 1.8: "user:password" or empty
	Org    string // 2.x only
	Bucket string // 2.x bucket, or 1.8 database (optionally "db/rp")
	// Version is "auto" (probe the server), "1" (1.8+) or "2" (2.x).
	Version string
	// RawRetention is the retention given to a database or bucket that
	// carehub creates (domain.md: raw readings e.g. 90 days). 0 = forever.
	RawRetention time.Duration
	Log          zerolog.Logger
	// HTTPClient overrides the HTTP client (tests); nil = the SDK's default.
	HTTPClient *http.Client
	// TLS is the client configuration for an https:// URL
	// (CARE_TLS_CA_FILE); nil = the system's CAs.
	TLS *tls.Config
}

// Client is carehub's handle on one InfluxDB bucket.
type Client struct {
	c        influxdb2.Client
	version  string // "1" or "2"
	org      string
	bucket   string // as written and queried: "care/autogen" on 1.8
	writeURL string
	log      zerolog.Logger
}

// Open connects, finds out whether the server is 1.8 or 2.x (when
// o.Version is "auto") and creates the database or bucket if it is missing.
// It fails when InfluxDB is unreachable: carehub should not start writing
// into nowhere.
func Open(ctx context.Context, o Options) (*Client, error) {
	if o.URL == "" {
		return nil, errors.New("influx: no URL: set CARE_INFLUX_URL, e.g. http://127.0.0.1:8086")
	}
	if o.Bucket == "" {
		return nil, errors.New("influx: no bucket: set CARE_INFLUX_BUCKET, e.g. care")
	}
	opts := influxdb2.DefaultOptions().SetApplicationName("carehub").SetHTTPRequestTimeout(30)
	if o.HTTPClient != nil {
		opts.SetHTTPClient(o.HTTPClient)
	}
	if o.TLS != nil {
		opts.SetTLSConfig(o.TLS)
	}
	c := &Client{
		c:   influxdb2.NewClientWithOptions(o.URL, o.Token, opts),
		org: o.Org,
		log: o.Log.With().Str("component", "influx").Logger(),
	}
	var err error
	switch o.Version {
	case "1", "2":
		c.version = o.Version
	case "", "auto":
		if c.version, err = c.detect(ctx); err != nil {
			c.c.Close()
			return nil, err
		}
	default:
		c.c.Close()
		return nil, fmt.Errorf("influx: version %q: use auto, 1 or 2", o.Version)
	}
	if c.version == "1" {
		err = c.setup1(ctx, o)
	} else {
		err = c.setup2(ctx, o)
	}
	if err != nil {
		c.c.Close()
		return nil, err
	}
	q := url.Values{"bucket": {c.bucket}, "precision": {"ms"}}
	if c.version == "2" {
		q.Set("org", c.org)
	}
	c.writeURL = c.c.HTTPService().ServerAPIURL() + "write?" + q.Encode()
	c.log.Info().Str("version", c.version).Str("bucket", c.bucket).Msg("influxdb ready")
	return c, nil
}

// Bucket returns the bucket to write to and query ("care/autogen" on 1.8).
func (c *Client) Bucket() string { return c.bucket }

// Version returns "1" for InfluxDB 1.8 or "2" for 2.x.
func (c *Client) Version() string { return c.version }

// Ping reports whether InfluxDB answers, for GET /readyz.
func (c *Client) Ping(ctx context.Context) error {
	ok, err := c.c.Ping(ctx)
	if err != nil {
		return fmt.Errorf("influx ping: %w", err)
	}
	if !ok {
		return errors.New("influx ping: not ok")
	}
	return nil
}

// Close releases idle connections.
func (c *Client) Close() { c.c.Close() }

// WriteError is a failed write, classified so the writer knows whether to
// retry it, split it, or set points aside.
type WriteError struct {
	Status     int           // HTTP status; 0 = no answer (network)
	RetryAfter time.Duration // from Retry-After, when the server sent one
	Message    string
	Err        error // the transport error when Status is 0
}

func (e *WriteError) Error() string {
	if e.Status == 0 {
		return "influx write: " + e.Message
	}
	return fmt.Sprintf("influx write: HTTP %d: %s", e.Status, e.Message)
}

func (e *WriteError) Unwrap() error { return e.Err }

// TooLarge reports a body over the server's limit (413): split it.
func (e *WriteError) TooLarge() bool { return e.Status == http.StatusRequestEntityTooLarge }

// Rejected reports that InfluxDB refused points of the body for good: 400
// (unparsable line, field type conflict, beyond retention on 1.8) or 422
// (beyond retention on 2.x). Retrying the same body cannot succeed; on a
// partial write the other points were stored.
func (e *WriteError) Rejected() bool {
	return e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity
}

// Retryable reports a failure that is not the data's fault: no answer,
// 429, 5xx, and also 401/403/404 (a revoked token or a deleted bucket is
// for an operator to fix; the points must wait, not be thrown away).
func (e *WriteError) Retryable() bool { return !e.TooLarge() && !e.Rejected() }

// WriteLines sends body (newline-separated line protocol, precision ms) in
// one HTTP request. Any failure is a *WriteError.
func (c *Client) WriteLines(ctx context.Context, body []byte) error {
	perr := c.c.HTTPService().DoPostRequest(ctx, c.writeURL, bytes.NewReader(body), func(req *http.Request) {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}, nil)
	if perr == nil {
		return nil
	}
	we := &WriteError{Status: perr.StatusCode, RetryAfter: time.Duration(perr.RetryAfter) * time.Second}
	switch {
	case perr.StatusCode == 0:
		we.Err = perr.Err
		we.Message = perr.Error()
	case perr.Message != "":
		we.Message = perr.Message
	default:
		we.Message = perr.Error()
	}
	return we
}

// request sends a request to path through the SDK's HTTP service (which
// adds the Authorization header); the caller must close the body.
func (c *Client) request(ctx context.Context, method, path string, body []byte, contentType string) (*http.Response, error) {
	u := strings.TrimSuffix(c.c.HTTPService().ServerURL(), "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return c.c.HTTPService().DoHTTPRequestWithResponse(req, nil)
}

// httpStatus does a request and returns the status and at most 64 KiB of
// body.
func (c *Client) httpStatus(ctx context.Context, method, path string, body []byte, contentType string) (int, []byte, error) {
	resp, err := c.request(ctx, method, path, body, contentType)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b.Bytes(), err
}

// RetryDelay is how long the server asked the client to wait (Retry-After),
// or 0. It lets consumers classify failures through a small interface of
// their own instead of importing this type.
func (e *WriteError) RetryDelay() time.Duration { return e.RetryAfter }

// Query runs a Flux query and returns InfluxDB's annotated CSV answer (with
// the datatype annotation), which the caller must close; a refused query is
// an error carrying InfluxDB's message. Package flux builds the queries and
// reads the answers.
func (c *Client) Query(ctx context.Context, flux string) (io.ReadCloser, error) {
	if flux == "" {
		return nil, fmt.Errorf("influx query: empty query")
	}
	body, err := json.Marshal(map[string]any{
		"query": flux, "type": "flux",
		"dialect": map[string]any{"header": true, "delimiter": ",", "annotations": []string{"datatype"}},
	})
	if err != nil {
		return nil, err
	}
	u := strings.TrimSuffix(c.c.HTTPService().ServerURL(), "/") + "/api/v2/query?org=" + url.QueryEscape(c.org)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("influx query: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if loopback(u) {
		// On loopback compressing the answer only costs: InfluxDB took
		// 20-30 ms more to gzip a resident's 14 days of minute points
		// (290 KB of CSV) than to send them, and carehub then inflates
		// them again.
		req.Header.Set("Accept-Encoding", "identity")
	}
	resp, err := c.c.HTTPService().DoHTTPRequestWithResponse(req, nil)
	if err != nil {
		return nil, fmt.Errorf("influx query: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct{ Message, Error string }
		if json.Unmarshal(b, &e) == nil && (e.Message != "" || e.Error != "") {
			return nil, fmt.Errorf("influx query: %s: %s%s", resp.Status, e.Message, e.Error)
		}
		return nil, fmt.Errorf("influx query: %s: %s", resp.Status, snippet(b))
	}
	return resp.Body, nil
}

// loopback reports whether u's host is this machine.
func loopback(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	if p.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(p.Hostname())
	return ip != nil && ip.IsLoopback()
}
