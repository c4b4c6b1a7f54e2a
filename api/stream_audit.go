package api

import (
	"context"
	"slices"
	"time"

	"github.com/carehub/carehub/internal/audit"
)

// deliveryFlushEvery bounds how long an alert stream's deliveries wait to be
// recorded: they are batched, one audit entry per stream per period, naming
// every resident whose alerts the stream disclosed.
const deliveryFlushEvery = 30 * time.Second

// deliveryAudit collects the residents an alert stream disclosed and records
// them as "alerts.stream.delivery" entries (audit.Entry.Residents). It runs
// in the stream's goroutine only.
type deliveryAudit struct {
	s       *Server
	entry   audit.Entry // who, from where
	pending []string
	since   time.Time
}

func (s *Server) newDeliveryAudit(p Principal, source string) *deliveryAudit {
	return &deliveryAudit{s: s, entry: audit.Entry{Actor: p.ID, Role: p.Role, Source: source, Action: "alerts.stream.delivery", Outcome: audit.OutcomeOK}}
}

// add notes that an alert of residentID was written to the client, and
// records the batch when it is old enough.
func (d *deliveryAudit) add(residentID string) {
	if residentID == "" {
		return
	}
	if len(d.pending) == 0 {
		d.since = time.Now()
	}
	if !slices.Contains(d.pending, residentID) {
		d.pending = append(d.pending, residentID)
	}
	if time.Since(d.since) >= deliveryFlushEvery || len(d.pending) >= audit.MaxResidents {
		d.flush()
	}
}

// flush records the pending deliveries (at a heartbeat, and when the stream
// ends). A failure is logged: the alerts were delivered already, and a
// stream that carries alarms is not cut for an audit outage.
func (d *deliveryAudit) flush() {
	if len(d.pending) == 0 {
		return
	}
	e := d.entry
	e.At = d.s.o.Clock().UTC()
	e.Residents = d.pending
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.s.o.Audit.Record(ctx, e); err != nil {
		d.s.log.Error().Err(err).Int("residents", len(d.pending)).Msg("alert stream deliveries could not be audited")
		return // kept: recorded with the next batch
	}
	d.pending = nil
}
