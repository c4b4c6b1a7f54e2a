package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/carehub/carehub/internal/redact"
)

// detect tells InfluxDB 1.8 from 2.x by GET /api/v2/setup: 2.x always has
// it (it answers whether onboarding is still open, without auth), 1.8 has
// no such route and answers 404. The X-Influxdb-Version header cannot be
// used: a source-built 1.8 reports "unknown".
func (c *Client) detect(ctx context.Context) (string, error) {
	status, body, err := c.httpStatus(ctx, http.MethodGet, "/api/v2/setup", nil, "")
	if err != nil {
		return "", fmt.Errorf("influx: cannot reach %s: %w: is InfluxDB running, and is CARE_INFLUX_URL right?", redact.URL(c.c.ServerURL()), err)
	}
	switch status {
	case http.StatusNotFound:
		return "1", nil
	case http.StatusOK:
		return "2", nil
	}
	return "", fmt.Errorf("influx: %s answered %d to GET /api/v2/setup (%s): cannot tell 1.8 from 2.x; set CARE_INFLUX_VERSION=1 or 2",
		redact.URL(c.c.ServerURL()), status, snippet(body))
}

// setup1 prepares InfluxDB 1.8: the bucket is "db/rp" and the database is
// created, with the raw-data retention on its autogen policy, when missing.
func (c *Client) setup1(ctx context.Context, o Options) error {
	db, rp, _ := strings.Cut(o.Bucket, "/")
	if rp == "" {
		rp = "autogen"
	}
	c.bucket = db + "/" + rp
	res, err := c.influxQL(ctx, "SHOW DATABASES")
	if err != nil {
		return err
	}
	for _, r := range res.Results {
		for _, s := range r.Series {
			for _, v := range s.Values {
				if len(v) > 0 && v[0] == db {
					return nil
				}
			}
		}
	}
	if rp != "autogen" {
		return fmt.Errorf("influx 1.8: database %q does not exist and carehub creates only its autogen policy: create database %q with retention policy %q, or set CARE_INFLUX_BUCKET=%s", db, db, rp, db)
	}
	stmt := "CREATE DATABASE " + quoteIdent(db) + " WITH DURATION " + influxQLDuration(o.RawRetention)
	if _, err := c.influxQL(ctx, stmt); err != nil {
		return err
	}
	c.log.Info().Str("database", db).Dur("retention", o.RawRetention).Msg("influx 1.8 database created")
	return nil
}

type influxQLResult struct {
	Results []struct {
		Series []struct {
			Values [][]any `json:"values"`
		} `json:"series"`
		Error string `json:"error"`
	} `json:"results"`
	Error string `json:"error"`
}

// influxQL runs one statement through 1.8's /query endpoint.
func (c *Client) influxQL(ctx context.Context, stmt string) (*influxQLResult, error) {
	form := url.Values{"q": {stmt}}.Encode()
	status, body, err := c.httpStatus(ctx, http.MethodPost, "/query", []byte(form), "application/x-www-form-urlencoded")
	if err != nil {
		return nil, fmt.Errorf("influx 1.8: %s: %w: is InfluxDB running, and is CARE_INFLUX_URL right?", stmt, err)
	}
	var res influxQLResult
	_ = json.Unmarshal(body, &res)
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, fmt.Errorf("influx 1.8: %s: not authorized (%d): set CARE_INFLUX_TOKEN to user:password of an admin user, or create the database yourself", stmt, status)
	case status/100 != 2:
		return nil, fmt.Errorf("influx 1.8: %s: HTTP %d: %s", stmt, status, snippet(body))
	case res.Error != "":
		return nil, fmt.Errorf("influx 1.8: %s: %s", stmt, res.Error)
	}
	for _, r := range res.Results {
		if r.Error != "" {
			return nil, fmt.Errorf("influx 1.8: %s: %s", stmt, r.Error)
		}
	}
	return &res, nil
}

// quoteIdent quotes an InfluxQL identifier (InfluxQL spec, "Identifiers").
func quoteIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// influxQLDuration writes a retention for CREATE DATABASE: whole hours
// (1.8 wants at least 1h), or INF for "keep forever".
func influxQLDuration(d time.Duration) string {
	if d <= 0 {
		return "INF"
	}
	h := int64((d + time.Hour - 1) / time.Hour)
	return strconv.FormatInt(h, 10) + "h"
}

// setup2 prepares InfluxDB 2.x: the server must be onboarded, the org must
// exist, and the bucket is created with the raw-data retention if missing.
func (c *Client) setup2(ctx context.Context, o Options) error {
	c.bucket = o.Bucket
	if o.Org == "" {
		return fmt.Errorf("influx 2.x: no organization: set CARE_INFLUX_ORG")
	}
	if o.Token == "" {
		return fmt.Errorf("influx 2.x: no token: set CARE_INFLUX_TOKEN (or CARE_INFLUX_TOKEN_FILE) to an API token with write access to org %q", o.Org)
	}
	status, body, err := c.httpStatus(ctx, http.MethodGet, "/api/v2/setup", nil, "")
	if err != nil {
		return fmt.Errorf("influx 2.x: cannot reach %s: %w", redact.URL(c.c.ServerURL()), err)
	}
	var setup struct {
		Allowed bool `json:"allowed"`
	}
	if status == http.StatusOK && json.Unmarshal(body, &setup) == nil && setup.Allowed {
		return fmt.Errorf("influx 2.x at %s is not set up yet: run `influx setup --org %s --bucket %s` and set CARE_INFLUX_TOKEN to its token", redact.URL(c.c.ServerURL()), o.Org, o.Bucket)
	}

	status, body, err = c.httpStatus(ctx, http.MethodGet, "/api/v2/orgs?"+url.Values{"org": {o.Org}}.Encode(), nil, "")
	if err != nil {
		return fmt.Errorf("influx 2.x: find org %q: %w", o.Org, err)
	}
	var orgs struct {
		Orgs []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"orgs"`
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("influx 2.x: token refused (%d) when looking up org %q: check CARE_INFLUX_TOKEN", status, o.Org)
	case status == http.StatusNotFound:
		return fmt.Errorf("influx 2.x: organization %q not found: check CARE_INFLUX_ORG", o.Org)
	case status != http.StatusOK:
		return fmt.Errorf("influx 2.x: find org %q: HTTP %d: %s", o.Org, status, snippet(body))
	}
	if err := json.Unmarshal(body, &orgs); err != nil {
		return fmt.Errorf("influx 2.x: find org %q: %w", o.Org, err)
	}
	orgID := ""
	for _, og := range orgs.Orgs {
		if og.Name == o.Org {
			orgID = og.ID
		}
	}
	if orgID == "" {
		return fmt.Errorf("influx 2.x: organization %q not found: check CARE_INFLUX_ORG", o.Org)
	}

	status, body, err = c.httpStatus(ctx, http.MethodGet, "/api/v2/buckets?"+url.Values{"orgID": {orgID}, "name": {o.Bucket}}.Encode(), nil, "")
	if err != nil {
		return fmt.Errorf("influx 2.x: find bucket %q: %w", o.Bucket, err)
	}
	var buckets struct {
		Buckets []struct {
			Name string `json:"name"`
		} `json:"buckets"`
	}
	switch status {
	case http.StatusOK:
		if err := json.Unmarshal(body, &buckets); err != nil {
			return fmt.Errorf("influx 2.x: find bucket %q: %w", o.Bucket, err)
		}
		for _, b := range buckets.Buckets {
			if b.Name == o.Bucket {
				return nil
			}
		}
	case http.StatusNotFound:
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("influx 2.x: token refused (%d) when looking up bucket %q: give the CARE_INFLUX_TOKEN token read/write access to it", status, o.Bucket)
	default:
		return fmt.Errorf("influx 2.x: find bucket %q: HTTP %d: %s", o.Bucket, status, snippet(body))
	}

	type rule struct {
		Type         string `json:"type"`
		EverySeconds int64  `json:"everySeconds"`
	}
	req := struct {
		OrgID          string `json:"orgID"`
		Name           string `json:"name"`
		RetentionRules []rule `json:"retentionRules"`
	}{OrgID: orgID, Name: o.Bucket, RetentionRules: []rule{}}
	if o.RawRetention > 0 {
		req.RetentionRules = append(req.RetentionRules, rule{Type: "expire", EverySeconds: int64(o.RawRetention / time.Second)})
	}
	js, _ := json.Marshal(req)
	status, body, err = c.httpStatus(ctx, http.MethodPost, "/api/v2/buckets", js, "application/json")
	if err != nil {
		return fmt.Errorf("influx 2.x: create bucket %q: %w", o.Bucket, err)
	}
	switch status {
	case http.StatusCreated, http.StatusOK, http.StatusConflict: // 409: another instance made it
		c.log.Info().Str("bucket", o.Bucket).Dur("retention", o.RawRetention).Msg("influx 2.x bucket created")
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("influx 2.x: token may not create bucket %q (%d): create it yourself with a retention of %s, or use an all-access token", o.Bucket, status, o.RawRetention)
	}
	return fmt.Errorf("influx 2.x: create bucket %q: HTTP %d: %s", o.Bucket, status, snippet(body))
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
