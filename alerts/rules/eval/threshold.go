package eval

import (
	"time"

	"github.com/carehub/carehub/alerts/rules"
)

// bandState tracks how long, and on how many consecutive readings, one band
// has been crossed.
type bandState struct {
	Since time.Time `json:"since,omitzero"`
	Count int       `json:"count,omitempty"`
}

// thrState is one threshold rule's state for a resident (vitals) or one of
// its devices (room climate, air quality).
type thrState struct {
	Rule       string        `json:"rule"`
	Dev        string        `json:"dev,omitempty"` // "" for vitals
	Last       time.Time     `json:"last"`          // newest reading applied
	Bands      []bandState   `json:"bands"`
	Sev        int8          `json:"sev,omitempty"` // active severity, 0 = not active
	ClearSince time.Time     `json:"clear_since,omitzero"`
	Value      float64       `json:"value,omitempty"`     // the value that set or raised Sev
	Op         string        `json:"op,omitempty"`        // the band's comparison
	Threshold  float64       `json:"threshold,omitempty"` // the band limit it crossed
	Held       time.Duration `json:"held,omitempty"`      // how long the band had held
}

// apply feeds one reading into the state. The condition becomes active at
// the highest band crossed for its persistence and repeat count; it only
// rises while active; it clears once the value has stayed past the clear
// levels for ClearFor. Readings not newer than the last one are ignored:
// a redelivered reading must not count as a repeat, and a device's backlog
// after an outage is history, not news.
//
// inBed is set when the bed sensor reports the resident in bed: a heart
// rate's low-side high band (41–50 by default) is then a warning. A
// sleeping pulse in the 40s is common and benign in older people (NEWS2
// scores 41–50 as 1, like 91–110, which is a warning here); ≤ 40 stays
// critical.
func (s *thrState) apply(v float64, ts time.Time, l rules.Limit, heatWave, inBed bool) {
	if !s.Last.IsZero() && !ts.After(s.Last) {
		return
	}
	if len(s.Bands) != len(l.Bands) {
		s.Bands = make([]bandState, len(l.Bands))
	}
	if !s.Last.IsZero() && l.MaxGap > 0 && ts.Sub(s.Last) > l.MaxGap {
		clear(s.Bands)
		s.ClearSince = time.Time{}
	}
	s.Last = ts
	want, op, thr, held := sevNone, "", 0.0, time.Duration(0)
	for i, b := range l.Bands {
		bs := &s.Bands[i]
		if !b.Crossed(v) {
			*bs = bandState{}
			continue
		}
		if bs.Count == 0 {
			bs.Since = ts
		}
		bs.Count++
		if bs.Count < max(1, b.Repeat) || ts.Sub(bs.Since) < b.For {
			continue
		}
		sev := sevRank(b.Severity)
		if heatWave && s.Rule == rules.RuleRoomTemp && !b.Low() && sev == sevWarning {
			sev = sevHigh
		}
		if inBed && s.Rule == rules.RuleHeartRate && b.Low() && sev == sevHigh {
			sev = sevWarning
		}
		if sev > want {
			want, op, thr, held = sev, b.Op, b.Value, ts.Sub(bs.Since)
		}
	}
	if want > s.Sev {
		s.Sev, s.Value, s.Op, s.Threshold, s.Held = want, v, op, thr, held
		s.ClearSince = time.Time{}
		return
	}
	if s.Sev == sevNone {
		return
	}
	past := (!l.HasLow() || v >= l.ClearLow) && (!l.HasHigh() || v <= l.ClearHigh)
	if !past {
		s.ClearSince = time.Time{}
		return
	}
	if s.ClearSince.IsZero() {
		s.ClearSince = ts
	}
	if ts.Sub(s.ClearSince) >= l.ClearFor {
		s.Sev, s.ClearSince = sevNone, time.Time{}
		s.Value, s.Threshold, s.Held = v, 0, 0
	}
}

// force raises the state to at least sev at once, for a detector that
// alarmed itself (a CO detector's "co" event): the detector has already
// applied its own exposure time.
func (s *thrState) force(sev int8, v, thr float64) {
	if sev > s.Sev {
		s.Sev, s.Value, s.Op, s.Threshold, s.Held = sev, v, ">=", thr, 0
		s.ClearSince = time.Time{}
	}
}
