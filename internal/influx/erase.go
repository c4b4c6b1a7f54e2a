package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/carehub/carehub/internal/catalog"
)

// eraseStart and eraseStop bound a 2.x delete: every time a point can have.
// The delete API needs a range; points far in the future are refused at
// ingest, but a wide stop costs nothing.
var (
	eraseStart = time.Unix(0, 0).UTC()
	eraseStop  = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// devicesPerStatement bounds one DROP SERIES or delete predicate.
const devicesPerStatement = 32

// EraseResident deletes a resident's time series (domain.md privacy:
// erasure per resident): every series tagged with their resident_id
// (readings, events, alerts, and any aggregate measurement), and the
// device_status series of their devices, which are tagged by device_id
// only (contract §2). It returns what it deleted, for the caller's answer
// and audit. Ids are checked with catalog.ValidID before they go into a
// statement, and are quoted as literals: request values are never pasted
// in unchecked.
//
// On 1.8 it runs DROP SERIES through /query (InfluxQL, database-scoped: it
// drops the series in every retention policy). On 2.x it calls
// /api/v2/delete with a tag predicate over all time.
func (c *Client) EraseResident(ctx context.Context, residentID string, deviceIDs []string) (string, error) {
	if !catalog.ValidID(residentID) {
		return "", fmt.Errorf("influx erase: resident id %q is not a valid id", residentID)
	}
	for _, d := range deviceIDs {
		if !catalog.ValidID(d) {
			return "", fmt.Errorf("influx erase: device id %q is not a valid id", d)
		}
	}
	if c.version == "1" {
		return c.erase1(ctx, residentID, deviceIDs)
	}
	return c.erase2(ctx, residentID, deviceIDs)
}

// chunks splits ids into groups of at most n.
func chunks(ids []string, n int) [][]string {
	var out [][]string
	for len(ids) > n {
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

func (c *Client) erase1(ctx context.Context, residentID string, deviceIDs []string) (string, error) {
	db, _, _ := strings.Cut(c.bucket, "/")
	stmts := []string{`DROP SERIES WHERE "resident_id" = '` + residentID + `'`}
	for _, group := range chunks(deviceIDs, devicesPerStatement) {
		conds := make([]string, len(group))
		for i, d := range group {
			conds[i] = `"device_id" = '` + d + `'`
		}
		stmts = append(stmts, `DROP SERIES FROM "device_status" WHERE `+strings.Join(conds, " OR "))
	}
	for _, stmt := range stmts {
		if err := c.influxQLOn(ctx, db, stmt); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("influxdb 1.8 database %s: dropped every series with resident_id=%s and the device_status series of %d devices",
		db, residentID, len(deviceIDs)), nil
}

// influxQLOn runs one statement against database db through 1.8's /query.
func (c *Client) influxQLOn(ctx context.Context, db, stmt string) error {
	form := url.Values{"q": {stmt}, "db": {db}}.Encode()
	status, body, err := c.httpStatus(ctx, http.MethodPost, "/query", []byte(form), "application/x-www-form-urlencoded")
	if err != nil {
		return fmt.Errorf("influx 1.8: %s: %w", stmt, err)
	}
	var res influxQLResult
	_ = json.Unmarshal(body, &res)
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("influx 1.8: %s: not authorized (%d): DROP SERIES needs a user with write access to %s", stmt, status, db)
	case status/100 != 2:
		return fmt.Errorf("influx 1.8: %s: HTTP %d: %s", stmt, status, snippet(body))
	case res.Error != "":
		return fmt.Errorf("influx 1.8: %s: %s", stmt, res.Error)
	}
	for _, r := range res.Results {
		if r.Error != "" {
			return fmt.Errorf("influx 1.8: %s: %s", stmt, r.Error)
		}
	}
	return nil
}

func (c *Client) erase2(ctx context.Context, residentID string, deviceIDs []string) (string, error) {
	preds := []string{`resident_id="` + residentID + `"`}
	// The delete predicate has no OR (InfluxDB 2.x docs, "Delete predicate
	// syntax"): one request per device.
	for _, d := range deviceIDs {
		preds = append(preds, `_measurement="device_status" AND device_id="`+d+`"`)
	}
	path := "/api/v2/delete?" + url.Values{"org": {c.org}, "bucket": {c.bucket}}.Encode()
	for _, p := range preds {
		body, _ := json.Marshal(map[string]string{
			"start": eraseStart.Format(time.RFC3339), "stop": eraseStop.Format(time.RFC3339), "predicate": p,
		})
		status, resp, err := c.httpStatus(ctx, http.MethodPost, path, body, "application/json")
		if err != nil {
			return "", fmt.Errorf("influx 2.x delete %s: %w", p, err)
		}
		if status/100 != 2 {
			return "", fmt.Errorf("influx 2.x delete %s: HTTP %d: %s", p, status, snippet(resp))
		}
	}
	return fmt.Sprintf("influxdb 2.x bucket %s: deleted every point with resident_id=%s and the device_status points of %d devices",
		c.bucket, residentID, len(deviceIDs)), nil
}
