package flux

import (
	"context"
	"time"
)

// MaxAroundPoints bounds the raw points shown around one alert: an hour of
// a radar's per-second heart rate would be 3600, more than a phone needs
// and more than an alert view should hold in memory.
const MaxAroundPoints = 2000

// Around returns the raw points of one metric of one resident in
// [from, to), in time order (several devices merged), at most limit of
// them (0 or more than MaxAroundPoints = MaxAroundPoints); the bool says
// whether more matched (GET /alerts/{id}: the readings around the alert).
func (r *Reader) Around(ctx context.Context, residentID, metric string, from, to time.Time, limit int) ([]Point, bool, error) {
	if err := checkSummary(residentID, from, to); err != nil {
		return nil, false, err
	}
	if limit <= 0 || limit > MaxAroundPoints {
		limit = MaxAroundPoints
	}
	// One point more than the limit tells a full window from a cut one.
	pts, err := r.Readings(ctx, ReadingsQuery{ResidentID: residentID, Metric: metric, From: from, To: to, MaxPoints: limit + 1})
	if err != nil {
		return nil, false, err
	}
	if len(pts) > limit {
		return pts[:limit], true, nil
	}
	return pts, false, nil
}
