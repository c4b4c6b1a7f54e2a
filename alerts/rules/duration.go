package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Durations in settings are Go duration strings ("90s", "15m", "8h") in
// JSON, both ways. Bare numbers were integer nanoseconds, which made
// `"for": 28800` an inactivity tier of 28.8 µs (issue 10 item 3): the API
// refuses them (CheckDurationSyntax, 422) except 0, and only settings
// stored by an older version are still read as nanoseconds.

// jsonDur is a time.Duration that is a duration string in JSON.
type jsonDur time.Duration

func (d jsonDur) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDur) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := parseDur(s)
		if err != nil {
			return err
		}
		*d = jsonDur(v)
		return nil
	}
	// Settings an older version stored: integer nanoseconds.
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not a duration such as \"90s\", \"15m\" or \"8h\"", b)
	}
	*d = jsonDur(n)
	return nil
}

func parseDur(s string) (time.Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as \"90s\", \"15m\" or \"8h\"", s)
	}
	return v, nil
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// MarshalJSON writes For as a duration string.
func (b Band) MarshalJSON() ([]byte, error) {
	type plain Band
	return json.Marshal(struct {
		plain
		For jsonDur `json:"for,omitempty"`
	}{plain(b), jsonDur(b.For)})
}

// UnmarshalJSON reads For from a duration string (or stored nanoseconds).
func (b *Band) UnmarshalJSON(data []byte) error {
	type plain Band
	aux := struct {
		plain
		For jsonDur `json:"for,omitempty"`
	}{}
	if err := strictDecode(data, &aux); err != nil {
		return err
	}
	*b = Band(aux.plain)
	b.For = time.Duration(aux.For)
	return nil
}

// MarshalJSON writes ClearFor, MaxGap and Window as duration strings.
func (l Limit) MarshalJSON() ([]byte, error) {
	type plain Limit
	return json.Marshal(struct {
		plain
		ClearFor jsonDur `json:"clear_for,omitempty"`
		MaxGap   jsonDur `json:"max_gap,omitempty"`
		Window   jsonDur `json:"window,omitempty"`
	}{plain(l), jsonDur(l.ClearFor), jsonDur(l.MaxGap), jsonDur(l.Window)})
}

// UnmarshalJSON reads ClearFor, MaxGap and Window from duration strings.
func (l *Limit) UnmarshalJSON(data []byte) error {
	type plain Limit
	aux := struct {
		plain
		ClearFor jsonDur `json:"clear_for,omitempty"`
		MaxGap   jsonDur `json:"max_gap,omitempty"`
		Window   jsonDur `json:"window,omitempty"`
	}{}
	if err := strictDecode(data, &aux); err != nil {
		return err
	}
	*l = Limit(aux.plain)
	l.ClearFor, l.MaxGap, l.Window = time.Duration(aux.ClearFor), time.Duration(aux.MaxGap), time.Duration(aux.Window)
	return nil
}

// MarshalJSON writes ReportIntervals as duration strings.
func (s Settings) MarshalJSON() ([]byte, error) {
	type plain Settings
	var ri map[string]jsonDur
	if s.ReportIntervals != nil {
		ri = make(map[string]jsonDur, len(s.ReportIntervals))
		for k, v := range s.ReportIntervals {
			ri[k] = jsonDur(v)
		}
	}
	return json.Marshal(struct {
		plain
		ReportIntervals map[string]jsonDur `json:"report_intervals,omitempty"`
	}{plain(s), ri})
}

// UnmarshalJSON reads ReportIntervals from duration strings.
func (s *Settings) UnmarshalJSON(data []byte) error {
	type plain Settings
	aux := struct {
		plain
		ReportIntervals map[string]jsonDur `json:"report_intervals,omitempty"`
	}{}
	if err := strictDecode(data, &aux); err != nil {
		return err
	}
	*s = Settings(aux.plain)
	s.ReportIntervals = nil
	if aux.ReportIntervals != nil {
		s.ReportIntervals = make(map[string]time.Duration, len(aux.ReportIntervals))
		for k, v := range aux.ReportIntervals {
			s.ReportIntervals[k] = time.Duration(v)
		}
	}
	return nil
}

// CheckDurationSyntax refuses, in a settings document a person wrote (PUT
// /residents/{id}/settings), a duration given as a bare number other than
// 0: it would be read as nanoseconds, never what was meant. The error names
// each field and asks for a duration string. Other malformations are left
// to the decoder.
func CheckDurationSyntax(body []byte) error {
	var doc struct {
		Limits map[string]struct {
			Bands []struct {
				For json.RawMessage `json:"for"`
			} `json:"bands"`
			ClearFor json.RawMessage `json:"clear_for"`
			MaxGap   json.RawMessage `json:"max_gap"`
			Window   json.RawMessage `json:"window"`
		} `json:"limits"`
		ReportIntervals map[string]json.RawMessage `json:"report_intervals"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return nil // not this check's to report
	}
	var errs []error
	check := func(path string, raw json.RawMessage) {
		v := strings.TrimSpace(string(raw))
		if v == "" || v == "null" || v == "0" || v[0] == '"' {
			if v != "" && v[0] == '"' {
				var s string
				if json.Unmarshal(raw, &s) == nil {
					if _, err := parseDur(s); err != nil {
						errs = append(errs, fmt.Errorf("%s: %w", path, err))
					}
				}
			}
			return
		}
		errs = append(errs, fmt.Errorf("%s: %s is a bare number; write a duration string such as \"90s\", \"15m\" or \"8h\"", path, v))
	}
	for rule, l := range doc.Limits {
		for i, b := range l.Bands {
			check(fmt.Sprintf("limits[%q].bands[%d].for", rule, i), b.For)
		}
		check(fmt.Sprintf("limits[%q].clear_for", rule), l.ClearFor)
		check(fmt.Sprintf("limits[%q].max_gap", rule), l.MaxGap)
		check(fmt.Sprintf("limits[%q].window", rule), l.Window)
	}
	for k, raw := range doc.ReportIntervals {
		check(fmt.Sprintf("report_intervals[%q]", k), raw)
	}
	return errors.Join(errs...)
}
