// Package query is the one place that answers "may this person see this
// resident's data, and what is it", for both the JSON API (api) and the
// console's HTML pages (web). Each function checks scope the way contract
// §4 says (a caregiver sees only assigned residents; anything else is
// ErrNotFound, the same answer whether or not the resident exists) and
// records the audit entry of its API twin before it answers, so that a page
// view and the matching API call leave the same trail. It knows nothing of
// HTTP: callers translate ErrNotFound and ErrUnavailable into their own
// answers.
package query

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/catalog"
)

// Roles, as in internal/users and the API.
const (
	RoleAdmin       = "admin"
	RoleCoordinator = "coordinator"
	RoleCaregiver   = "caregiver"
)

// Errors callers map to their answers: 404 and 503.
var (
	ErrNotFound    = errors.New("not found")
	ErrUnavailable = errors.New("unavailable")
)

// Principal is who asks, and from where (for the audit trail).
type Principal struct {
	ID        string
	Role      string
	Residents []string // a caregiver's assigned residents
	Source    string   // client address
}

// CanSee reports whether p may see a resident: admins and coordinators see
// all, a caregiver only the residents assigned to them (contract §4).
func CanSee(p Principal, residentID string) bool {
	switch p.Role {
	case RoleAdmin, RoleCoordinator:
		return true
	case RoleCaregiver:
		return slices.Contains(p.Residents, residentID)
	}
	return false
}

// ReadingsQuery asks for one metric of one resident over a time range,
// optionally aggregated into windows of Every with Fn.
type ReadingsQuery struct {
	ResidentID string
	Metric     string
	From, To   time.Time
	Every      time.Duration // 0 = raw points
	Fn         string        // mean, min, max, count or last when Every > 0
}

// Point is one value at one time.
type Point struct {
	T time.Time
	V float64
}

// Registry is what queries need of the device registry.
type Registry interface {
	Resident(id string) (devices.Resident, bool)
	Residents() []devices.Resident
	Devices(keep func(devices.Device) bool) []devices.Device
	Homes() []devices.Home
}

// ReadingsSource answers readings queries (InfluxDB through Flux).
type ReadingsSource interface {
	Readings(ctx context.Context, q ReadingsQuery) ([]Point, error)
}

// ReadingsSetSource is a ReadingsSource that also answers several
// aggregated queries of one resident over one range and window at once
// (one InfluxDB query for a resident page's charts, flux.Reader.ReadingsSet).
type ReadingsSetSource interface {
	ReadingsSet(ctx context.Context, qs []ReadingsQuery) ([][]Point, error)
}

// LastReadings answers when each resident last sent a reading.
type LastReadings interface {
	LastReadings(ctx context.Context, from, to time.Time) (map[string]time.Time, error)
}

// AlertLister reads alerts (alerts.Manager).
type AlertLister interface {
	Get(id string) (alerts.Alert, error)
	List(f alerts.Filter) []alerts.Alert
}

// ModeSource says which mode (away, hospital, quiet) is in force for a
// resident now; "" when none (api's activeMode, settings.Store).
type ModeSource func(residentID string, now time.Time) string

// Auditor records accesses (internal/audit.Log).
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Service holds what queries read. Nil sources make their queries answer
// ErrUnavailable.
type Service struct {
	Registry Registry
	Series   ReadingsSource
	Last     LastReadings
	Manager  AlertLister
	Mode     ModeSource
	Drift    DriftSource    // nil leaves worsening baselines out of the overview
	Daily    DailySource    // nil: the overview's sparklines ask Series, one resident at a time
	Presence PresenceSource // nil: every device shows as never seen
	// RuleSettings, Chains and AuditLog answer the settings, escalation
	// and audit trail reads (admin.go); nil makes those ErrUnavailable.
	RuleSettings SettingsSource
	Chains       ChainSource
	AuditLog     AuditReader
	Audit        Auditor
	Clock        func() time.Time
}

func (s *Service) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock()
}

// Record writes one audit entry for p; when that fails the access must not
// happen, so the error is ErrUnavailable.
func (s *Service) Record(ctx context.Context, p Principal, e audit.Entry) error {
	e.At, e.Actor, e.Role, e.Source = s.now().UTC(), p.ID, p.Role, p.Source
	if e.Outcome == "" {
		e.Outcome = audit.OutcomeOK
	}
	if err := s.Audit.Record(ctx, e); err != nil {
		return errors.Join(ErrUnavailable, err)
	}
	return nil
}

// Visible returns the resident when it exists and p may see it, else
// ErrNotFound; it records nothing (callers audit what they then disclose).
func (s *Service) Visible(p Principal, id string) (devices.Resident, error) {
	r, ok := s.Registry.Resident(id)
	if !catalog.ValidID(id) || !ok || !CanSee(p, id) {
		return devices.Resident{}, ErrNotFound
	}
	return r, nil
}

// Resident is GET /residents/{id}: audited as resident.read.
func (s *Service) Resident(ctx context.Context, p Principal, id string) (devices.Resident, error) {
	r, err := s.Visible(p, id)
	if err != nil {
		return r, err
	}
	return r, s.Record(ctx, p, audit.Entry{ResidentID: r.ID, Action: "resident.read"})
}

// Devices is GET /residents/{id}/devices: audited as devices.read.
func (s *Service) Devices(ctx context.Context, p Principal, residentID string) ([]devices.Device, error) {
	if _, err := s.Visible(p, residentID); err != nil {
		return nil, err
	}
	if err := s.Record(ctx, p, audit.Entry{ResidentID: residentID, Action: "devices.read"}); err != nil {
		return nil, err
	}
	return s.Registry.Devices(func(d devices.Device) bool { return d.ResidentID == residentID }), nil
}

// Readings is GET /residents/{id}/readings for an already validated query:
// audited as readings.read.
func (s *Service) Readings(ctx context.Context, p Principal, q ReadingsQuery) ([]Point, error) {
	if _, err := s.Visible(p, q.ResidentID); err != nil {
		return nil, err
	}
	if s.Series == nil {
		return nil, ErrUnavailable
	}
	if err := s.Record(ctx, p, audit.Entry{ResidentID: q.ResidentID, Action: "readings.read"}); err != nil {
		return nil, err
	}
	return s.Series.Readings(ctx, q)
}

// VisibleAlert returns alert id when p may see it; it records nothing
// (callers audit the action they then take). An alert of a resident p may
// not see is ErrNotFound; the Manager's own errors (alerts.ErrNotFound,
// alerts.ErrInvalid) are returned as they are.
func (s *Service) VisibleAlert(p Principal, id string) (alerts.Alert, error) {
	if s.Manager == nil {
		return alerts.Alert{}, ErrUnavailable
	}
	a, err := s.Manager.Get(id)
	if err != nil {
		return alerts.Alert{}, err
	}
	if !CanSee(p, a.ResidentID) {
		return alerts.Alert{}, ErrNotFound
	}
	return a, nil
}

// Alert is GET /alerts/{id}: audited as alert.read; an alert of a resident
// p may not see is ErrNotFound, like one that does not exist.
func (s *Service) Alert(ctx context.Context, p Principal, id string) (alerts.Alert, error) {
	a, err := s.VisibleAlert(p, id)
	if errors.Is(err, ErrUnavailable) {
		return a, err
	}
	if err != nil {
		return alerts.Alert{}, errors.Join(ErrNotFound, err)
	}
	return a, s.Record(ctx, p, audit.Entry{ResidentID: a.ResidentID, Action: "alert.read"})
}

// AlertCursor is the position after the last alert of a page, in the
// Manager's List order (raised_at descending, then id descending).
type AlertCursor struct {
	RaisedAt time.Time
	ID       string
}

// after reports whether a comes after the cursor in List's order.
func (k AlertCursor) after(a alerts.Alert) bool {
	if !a.RaisedAt.Equal(k.RaisedAt) {
		return a.RaisedAt.Before(k.RaisedAt)
	}
	return a.ID < k.ID
}

// AlertsQuery is one page of GET /alerts: the filter, at most Limit alerts
// (0 = all), after the cursor when one is given.
type AlertsQuery struct {
	Filter alerts.Filter
	Limit  int
	After  *AlertCursor
}

// AlertsPage is GET /alerts: the alerts p may see matching q, newest first,
// and the cursor of the next page when there is one; audited as
// alerts.list naming every resident the page discloses. A resident filter
// naming a resident that does not exist or p may not see is ErrNotFound.
func (s *Service) AlertsPage(ctx context.Context, p Principal, q AlertsQuery) ([]alerts.Alert, *AlertCursor, error) {
	if s.Manager == nil {
		return nil, nil, ErrUnavailable
	}
	if rid := q.Filter.ResidentID; rid != "" {
		if _, ok := s.Registry.Resident(rid); !ok || !CanSee(p, rid) {
			return nil, nil, ErrNotFound
		}
	}
	out := []alerts.Alert{}
	var next *AlertCursor
	for _, a := range s.Manager.List(q.Filter) {
		if !CanSee(p, a.ResidentID) || (q.After != nil && !q.After.after(a)) {
			continue
		}
		if q.Limit > 0 && len(out) == q.Limit {
			last := out[q.Limit-1]
			next = &AlertCursor{RaisedAt: last.RaisedAt, ID: last.ID}
			break
		}
		out = append(out, a)
	}
	ids := make([]string, 0, len(out))
	for _, a := range out {
		ids = append(ids, a.ResidentID)
	}
	slices.Sort(ids)
	if err := s.Record(ctx, p, audit.Entry{Action: "alerts.list", Residents: slices.Compact(ids)}); err != nil {
		return nil, nil, err
	}
	return out, next, nil
}

// Alerts is AlertsPage without paging: every alert p may see matching f.
func (s *Service) Alerts(ctx context.Context, p Principal, f alerts.Filter) ([]alerts.Alert, error) {
	out, _, err := s.AlertsPage(ctx, p, AlertsQuery{Filter: f})
	return out, err
}

// MissingDataAfter: no reading for 24 h is "missing data" (domain.md
// inactivity tiers: 24 h = alarm).
const MissingDataAfter = 24 * time.Hour

// SeverityRank orders severities, lowest first.
var SeverityRank = map[string]int{"info": 1, "warning": 2, "high": 3, "critical": 4}

// OverviewRow is one resident on the overview.
type OverviewRow struct {
	Resident    devices.Resident
	OpenAlerts  int
	Highest     string       // highest severity among open alerts, "" when none
	Top         alerts.Alert // the open alert to look at first: the most severe, then the oldest; zero when none
	LastReading *time.Time
	MissingData bool
	Mode        string  // away, hospital or quiet when in force
	Drifting    []Drift // the baselines the resident is worsening from
}

// Drift is one baseline a resident is worsening from (api's drift rules):
// Change is Recent − Baseline in the metric's unit.
type Drift struct {
	Metric   string
	Baseline float64
	Recent   float64
	Change   float64
	Reason   string
}

// DriftSource answers which residents are worsening from a baseline now,
// and how.
type DriftSource interface {
	Drift(ctx context.Context, now time.Time) (map[string][]Drift, error)
}

// Overview is GET /overview: the residents p may see that need attention
// (open alerts, missing data, worsening baselines, a mode in force), most
// urgent first, audited as overview.read naming those residents. When the
// baseline queries fail the rest is still answered (OverviewDrift says so).
func (s *Service) Overview(ctx context.Context, p Principal) ([]OverviewRow, error) {
	a, err := s.OverviewDrift(ctx, p)
	return a.Rows, err
}

// OverviewAnswer is an overview with the baseline queries' error, when
// they failed and the rows show no drift.
type OverviewAnswer struct {
	Rows     []OverviewRow
	DriftErr error
}

// OverviewDrift is Overview that also says when the baselines are missing.
func (s *Service) OverviewDrift(ctx context.Context, p Principal) (OverviewAnswer, error) {
	if s.Last == nil {
		return OverviewAnswer{}, ErrUnavailable
	}
	now := s.now()
	last, err := s.Last.LastReadings(ctx, now.Add(-MissingDataAfter), now.Add(time.Second))
	if err != nil {
		return OverviewAnswer{}, errors.Join(ErrUnavailable, err)
	}
	rows := map[string]*OverviewRow{}
	for _, r := range s.Registry.Residents() {
		if !CanSee(p, r.ID) {
			continue
		}
		row := &OverviewRow{Resident: r}
		if s.Mode != nil {
			row.Mode = s.Mode(r.ID, now)
		}
		if t, ok := last[r.ID]; ok {
			t = t.UTC()
			row.LastReading = &t
		} else {
			row.MissingData = true
		}
		rows[r.ID] = row
	}
	if s.Manager != nil {
		for _, a := range s.openAlerts() {
			row := rows[a.ResidentID]
			if row == nil {
				continue
			}
			row.OpenAlerts++
			if SeverityRank[a.Severity] > SeverityRank[row.Highest] {
				row.Highest = a.Severity
			}
			if t := row.Top; t.ID == "" || SeverityRank[a.Severity] > SeverityRank[t.Severity] ||
				(a.Severity == t.Severity && a.RaisedAt.Before(t.RaisedAt)) {
				row.Top = a
			}
		}
	}
	var driftErr error
	if s.Drift != nil {
		var drift map[string][]Drift
		drift, driftErr = s.Drift.Drift(ctx, now)
		for rid, d := range drift {
			if row := rows[rid]; row != nil {
				row.Drifting = d
			}
		}
	}
	out := []OverviewRow{}
	for _, r := range rows {
		if r.OpenAlerts > 0 || r.MissingData || len(r.Drifting) > 0 || r.Mode != "" {
			out = append(out, *r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if x, y := SeverityRank[a.Highest], SeverityRank[b.Highest]; x != y {
			return x > y
		}
		if a.MissingData != b.MissingData {
			return a.MissingData
		}
		if a.OpenAlerts != b.OpenAlerts {
			return a.OpenAlerts > b.OpenAlerts
		}
		if len(a.Drifting) != len(b.Drifting) {
			return len(a.Drifting) > len(b.Drifting)
		}
		return a.Resident.ID < b.Resident.ID
	})
	ids := make([]string, len(out))
	for i, r := range out {
		ids[i] = r.Resident.ID
	}
	if err := s.Record(ctx, p, audit.Entry{Action: "overview.read", Residents: ids}); err != nil {
		return OverviewAnswer{}, err
	}
	return OverviewAnswer{Rows: out, DriftErr: driftErr}, nil
}

// ReadingsSet answers several readings queries about one resident for one
// view (a resident page's charts): one readings.read entry, as one
// GET /readings would record, however many metrics the view shows.
func (s *Service) ReadingsSet(ctx context.Context, p Principal, residentID string, qs []ReadingsQuery) ([][]Point, error) {
	if _, err := s.Visible(p, residentID); err != nil {
		return nil, err
	}
	if s.Series == nil {
		return nil, ErrUnavailable
	}
	if err := s.Record(ctx, p, audit.Entry{ResidentID: residentID, Action: "readings.read"}); err != nil {
		return nil, err
	}
	qs = append([]ReadingsQuery(nil), qs...)
	for i := range qs {
		qs[i].ResidentID = residentID
	}
	if set, ok := s.Series.(ReadingsSetSource); ok && oneRange(qs) {
		out, err := set.ReadingsSet(ctx, qs)
		if err != nil {
			return nil, errors.Join(ErrUnavailable, err)
		}
		return out, nil
	}
	// Otherwise the queries run 4 at a time: a resident page asks for a
	// dozen metrics, and one after another they add up (1.2 s on the demo).
	out := make([][]Point, len(qs))
	errs := make([]error, len(qs))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = s.Series.Readings(ctx, q)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(ErrUnavailable, err)
	}
	return out, nil
}

// oneRange reports whether qs are aggregated queries of distinct metrics
// over one range and window, which a ReadingsSetSource answers at once.
func oneRange(qs []ReadingsQuery) bool {
	seen := map[string]bool{}
	for _, q := range qs {
		if q.Every == 0 || !q.From.Equal(qs[0].From) || !q.To.Equal(qs[0].To) || q.Every != qs[0].Every || seen[q.Metric] {
			return false
		}
		seen[q.Metric] = true
	}
	return len(qs) > 0
}

// DailySource answers a metric's mean per calendar day of the program
// time zone for every resident at once, from a local midnight: the
// overview's sparklines in one query (or a cached answer) instead of one
// query per resident, each reading two weeks of raw points.
type DailySource interface {
	DailyMeans(ctx context.Context, metric string, from, to time.Time) (map[string][]Point, error)
}

// OverviewTrends reads one metric per resident for the rows an Overview
// answer just returned: those residents are already named in its
// overview.read entry, so this records nothing more. Daily means (q.Every
// a day, q.Fn mean) come from Daily when there is one; otherwise, or when
// it fails, at most 8 queries of Series run at once.
func (s *Service) OverviewTrends(ctx context.Context, rows []OverviewRow, q ReadingsQuery) [][]Point {
	out := make([][]Point, len(rows))
	if s.Daily != nil && q.Every == 24*time.Hour && q.Fn == "mean" {
		if all, err := s.Daily.DailyMeans(ctx, q.Metric, q.From, q.To); err == nil {
			for i, r := range rows {
				out[i] = all[r.Resident.ID]
			}
			return out
		}
	}
	if s.Series == nil {
		return out
	}
	sem := make(chan struct{}, 8)
	done := make(chan struct{})
	for i, r := range rows {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem; done <- struct{}{} }()
			rq := q
			rq.ResidentID = r.Resident.ID
			out[i], _ = s.Series.Readings(ctx, rq) // a failed sparkline shows as no data
		}()
	}
	for range rows {
		<-done
	}
	return out
}

// SettingsSource is what ModeFrom needs of the rule settings (alerts/settings.Store).
type SettingsSource interface {
	Settings(residentID string) rules.Settings
}

// ModeFrom answers a resident's mode in force from the rule settings, as
// GET /overview's mode does: away, hospital or quiet, until its end.
func ModeFrom(src SettingsSource) ModeSource {
	return func(residentID string, now time.Time) string {
		st := src.Settings(residentID)
		switch st.Mode {
		case rules.ModeAway, rules.ModeHospital, rules.ModeQuiet:
		default:
			return ""
		}
		if !st.ModeUntil.IsZero() && !now.Before(st.ModeUntil) {
			return ""
		}
		return st.Mode
	}
}

// openAlerts are the open and acknowledged alerts: the Manager keeps them in
// memory, while a list with resolved ones reads the whole history from KV.
func (s *Service) openAlerts() []alerts.Alert {
	open := s.Manager.List(alerts.Filter{Status: alerts.StatusOpen, Limit: 1 << 30})
	return append(open, s.Manager.List(alerts.Filter{Status: alerts.StatusAcknowledged, Limit: 1 << 30})...)
}
