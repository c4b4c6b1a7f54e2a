package admin

import (
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/web"
)

// The audit page's window and page size: as GET /api/v1/audit's.
const (
	auditWindow    = 7 * 24 * time.Hour
	maxAuditWindow = 366 * 24 * time.Hour
	auditPageSize  = 100
)

// localMinute is the format of <input type="datetime-local">, read and
// written in CARE_TIMEZONE.
const localMinute = "2006-01-02T15:04"

type auditFilter struct {
	ResidentID string
	From, To   string // datetime-local values
}

type auditPage struct {
	Filter  auditFilter
	Entries []audit.Entry
	Next    template.URL // the next page; empty on the last page
	Problem string       // catalogue key of what is wrong with the filter
}

// audit is GET /audit?resident_id=&from=&to=&after=: the audit trail,
// oldest first, a page of entries at a time (admins). The filter's times
// are minutes in CARE_TIMEZONE; after (set by the next-page link) is the
// last entry shown, so the next page starts after it. Recorded as
// audit.read, as GET /api/v1/audit. A filter that does not parse is a 400
// page that says which field is wrong.
func (p *pages) audit(ctx *fiber.Ctx) error {
	now := p.o.Clock()
	page := auditPage{Entries: []audit.Entry{}}
	f := &page.Filter
	f.ResidentID = ctx.Query("resident_id")
	q := audit.Query{ResidentID: f.ResidentID, To: now.UTC().Add(time.Second), Limit: auditPageSize}
	problem := func(key string) error {
		page.Problem = key
		return p.c.Page(ctx, http.StatusBadRequest, "audit", page, "audit.title")
	}
	if f.ResidentID != "" && !catalog.ValidID(f.ResidentID) {
		return problem("audit.bad.resident")
	}
	var err error
	if f.To = ctx.Query("to"); f.To != "" {
		if q.To, err = time.ParseInLocation(localMinute, f.To, p.o.Location); err != nil {
			return problem("audit.bad.to")
		}
	}
	q.From = q.To.Add(-auditWindow)
	if f.From = ctx.Query("from"); f.From != "" {
		if q.From, err = time.ParseInLocation(localMinute, f.From, p.o.Location); err != nil {
			return problem("audit.bad.from")
		}
	}
	if !q.From.Before(q.To) || q.To.Sub(q.From) > maxAuditWindow {
		return problem("audit.bad.range")
	}
	if f.From == "" {
		f.From = q.From.In(p.o.Location).Format(localMinute)
	}
	var after time.Time
	if a := ctx.Query("after"); a != "" {
		if after, err = time.Parse(time.RFC3339Nano, a); err != nil || after.Before(q.From) || !after.Before(q.To) {
			return problem("audit.bad.after")
		}
		q.From = after
	}
	res, err := p.o.Query.AuditTrail(ctx.UserContext(), web.Principal(ctx), q)
	if err != nil {
		return p.c.Fail(ctx, err)
	}
	for _, e := range res.Entries {
		if !after.IsZero() && !e.At.After(after) {
			continue // shown on the page before
		}
		page.Entries = append(page.Entries, e)
	}
	if res.Truncated && len(res.Entries) > 0 {
		v := url.Values{"after": {res.Entries[len(res.Entries)-1].At.UTC().Format(time.RFC3339Nano)}, "from": {f.From}}
		if f.ResidentID != "" {
			v.Set("resident_id", f.ResidentID)
		}
		if f.To != "" {
			v.Set("to", f.To)
		}
		page.Next = template.URL("/audit?" + v.Encode()) //nolint:gosec // built here from url.Values

	}
	return p.c.Page(ctx, http.StatusOK, "audit", page, "audit.title")
}
