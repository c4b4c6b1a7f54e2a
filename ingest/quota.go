package ingest

import (
	"math"
	"time"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/ratelimit"
)

// Quota is each device's share of ingest (issue 9 item 7): one device must
// not starve the others nor fill the disk. Telemetry is counted in records,
// everyday events and status reports in messages. Alarms (sos,
// fall, smoke, gas, co and their cancels) are never counted nor refused: a
// resident's SOS must pass whatever their devices sent before.
type Quota struct {
	Rate  float64 // telemetry records per second, sustained
	Burst float64 // telemetry records a device may send at once
	// EventRate and EventBurst are the same for everyday events (door,
	// motion, bed, toilet, water leak, tamper) and status reports.
	EventRate, EventBurst float64
	// MaxDevices bounds the buckets kept; default 100,000. Only registered
	// devices get one (unknown devices are refused before), so the bound
	// is for safety, not for normal use.
	MaxDevices int
}

// Quota defaults; config.Default* mirror them for CARE_DEVICE_*.
const (
	DefaultDeviceRate       = 20
	DefaultDeviceBurst      = 2000
	DefaultDeviceEventRate  = 2
	DefaultDeviceEventBurst = 60
	defaultQuotaDevices     = 100000
)

func (q Quota) withDefaults() Quota {
	if q.Rate <= 0 {
		q.Rate = DefaultDeviceRate
	}
	if q.Burst <= 0 {
		q.Burst = DefaultDeviceBurst
	}
	if q.EventRate <= 0 {
		q.EventRate = DefaultDeviceEventRate
	}
	if q.EventBurst <= 0 {
		q.EventBurst = DefaultDeviceEventBurst
	}
	if q.MaxDevices <= 0 {
		q.MaxDevices = defaultQuotaDevices
	}
	return q
}

// IsAlarm reports whether an event type is one that may call for help:
// it is never rate-limited and travels on ingest's priority path.
func IsAlarm(eventType string) bool {
	switch eventType {
	case catalog.EventSOS, catalog.EventSOSCancel, catalog.EventFall, catalog.EventFallCancel,
		catalog.EventSmoke, catalog.EventGas, catalog.EventCO:
		return true
	}
	return false
}

// buckets is a token bucket per device with a bounded map. A message is
// let in while the device has any credit, and its whole cost (the records
// of an array, counted without decoding them) is taken at once, so the
// bucket may go into debt down to -burst: a device that sent one big array
// waits for the debt to be paid. Taking the cost in the same step as the
// check means messages of one device handled in parallel (several
// subscriber connections) cannot all pass on the same credit.
type buckets struct{ k *ratelimit.Keyed }

func newBuckets(rate, burst float64, maxDevices int) *buckets {
	return &buckets{ratelimit.New(rate, int(math.Ceil(burst)), maxDevices)}
}

// take reports whether the device has credit now, and if so charges it
// cost units (at least one), down to -burst.
func (q *buckets) take(id string, cost float64, now time.Time) bool {
	return q.k.TakeDebt(id, cost, now)
}

// admit is take of one unit: one event or status report.
func (q *buckets) admit(id string, now time.Time) bool { return q.take(id, 1, now) }
