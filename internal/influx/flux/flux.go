package flux

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/carehub/carehub/internal/catalog"
)

// Flux is a query built only from constant text and typed, validated
// literals. InfluxDB 1.8's Flux (v0.65) has no query parameters, so values
// must be written into the query text; this type is how carehub makes sure
// a request value can never become Flux code (style.md: no pasting request
// values into query strings). Its zero value is an empty query.
type Flux struct{ text string }

// String returns the query text.
func (f Flux) String() string { return f.text }

// Lit is a Flux literal made by StringLit, TimeLit, DurationLit or an
// identifier from a whitelist; Fluxf accepts nothing else.
type Lit struct{ text string }

// String returns the literal as Flux source.
func (l Lit) String() string { return l.text }

// Fluxf builds a query from a constant format with %s verbs, each filled by
// a literal. The format must be a constant of the program, never input.
func Fluxf(format string, lits ...Lit) Flux {
	args := make([]any, len(lits))
	for i, l := range lits {
		args[i] = l.text
	}
	return Flux{text: fmt.Sprintf(format, args...)}
}

// StringLit quotes s as a Flux string literal (Flux spec, "String
// literals"): backslash and double quote are escaped, and every '$' is
// written as the byte escape \x24 so that "${" can never open an
// interpolation. Writing \$ is not enough: the v0.65 scanner reads "$\" as
// a plain dollar followed by a character, which would let a trailing
// backslash escape the closing quote.
func StringLit(s string) Lit {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '$':
			b.WriteString(`\x24`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return Lit{text: b.String()}
}

// TimeLit writes t as a Flux date-time literal: RFC 3339 in UTC.
func TimeLit(t time.Time) Lit {
	return Lit{text: t.UTC().Format(time.RFC3339Nano)}
}

// StopLit is the range() stop that selects exactly the points before to,
// on InfluxDB 1.8 (whose storage also returns a point lying on the stop)
// and on 2.x (which does not): carehub writes with millisecond precision,
// so 1 ns below the first whole millisecond at or after to lies between
// the last point before to and to itself. This replaces a filter on
// r._time < to, which InfluxDB 1.8's Flux cannot push down to storage
// along with the rest of the predicate: every series in the range was read
// into the query engine, and the overview's query of every resident's last
// reading took 0.8 s instead of 0.1 s for 100 residents.
func StopLit(to time.Time) Lit {
	ms := to.Truncate(time.Millisecond)
	if ms.Before(to) {
		ms = ms.Add(time.Millisecond)
	}
	return TimeLit(ms.Add(-time.Nanosecond))
}

// DurationLit writes d as a Flux duration literal in the largest unit that
// divides it. Flux durations here are positive whole milliseconds.
func DurationLit(d time.Duration) (Lit, error) {
	if d <= 0 || d%time.Millisecond != 0 {
		return Lit{}, fmt.Errorf("duration %s: must be a positive whole number of milliseconds", d)
	}
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d%u.d == 0 {
			return Lit{text: strconv.FormatInt(int64(d/u.d), 10) + u.name}, nil
		}
	}
	panic("unreachable")
}

// MaxDuration bounds ParseDuration: ten years is more than any window or
// retention carehub has.
const MaxDuration = 10 * 366 * 24 * time.Hour

// ParseDuration reads a duration from a request by a strict grammar:
// one or more <digits><unit> with unit ms, s, m, h, d or w, e.g. "5m",
// "1h30m", "7d". Nothing else (signs, spaces, fractions, "mo", "y") passes.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" || len(s) > 32 {
		return 0, fmt.Errorf("duration %q: write it like 5m, 1h or 7d", s)
	}
	var total time.Duration
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i || j-i > 9 {
			return 0, fmt.Errorf("duration %q: write it like 5m, 1h or 7d", s)
		}
		n, _ := strconv.ParseInt(s[i:j], 10, 64)
		k := j
		for k < len(s) && s[k] >= 'a' && s[k] <= 'z' {
			k++
		}
		var unit time.Duration
		switch s[j:k] {
		case "ms":
			unit = time.Millisecond
		case "s":
			unit = time.Second
		case "m":
			unit = time.Minute
		case "h":
			unit = time.Hour
		case "d":
			unit = 24 * time.Hour
		case "w":
			unit = 7 * 24 * time.Hour
		default:
			return 0, fmt.Errorf("duration %q: unit %q is not one of ms, s, m, h, d, w", s, s[j:k])
		}
		if time.Duration(n) > MaxDuration/unit {
			return 0, fmt.Errorf("duration %q: longer than %s", s, MaxDuration)
		}
		total += time.Duration(n) * unit
		if total > MaxDuration {
			return 0, fmt.Errorf("duration %q: longer than %s", s, MaxDuration)
		}
		i = k
	}
	if total <= 0 {
		return 0, fmt.Errorf("duration %q: must be longer than zero", s)
	}
	return total, nil
}

// Aggregate functions a readings query may apply per window (contract §4:
// fn=mean|min|max|count|last); Reader.Readings computes them (window.value).
var aggregates = map[string]bool{"mean": true, "min": true, "max": true, "count": true, "last": true}

// ValidAggregate reports whether fn may be used as ReadingsQuery.Fn.
func ValidAggregate(fn string) bool { return aggregates[fn] }

// DefaultMaxPoints bounds how many points one readings query returns, so an
// API request cannot make carehub hold a year of raw data in memory.
const DefaultMaxPoints = 100_000

// ReadingsQuery asks for one metric of one resident over a time range,
// raw or aggregated per window (contract §4, GET /residents/{id}/readings).
type ReadingsQuery struct {
	Bucket     string
	ResidentID string
	Metric     string
	From, To   time.Time
	Every      time.Duration // 0 = raw points
	Fn         string        // with Every: mean (default), min, max, count or last
	MaxPoints  int           // 0 = DefaultMaxPoints
	// MaxScan bounds the raw points an aggregated query reads (0 =
	// MaxScanRows); more is ErrTooManyRows.
	MaxScan int
	// Location makes whole-day windows calendar days there (the program
	// time zone); nil = UTC days.
	Location *time.Location
}

// Validate checks every value the query will carry.
func (q ReadingsQuery) Validate() error {
	var errs []error
	if q.Bucket == "" || !utf8.ValidString(q.Bucket) {
		errs = append(errs, errors.New("bucket is empty or not UTF-8"))
	}
	if !catalog.ValidID(q.ResidentID) {
		errs = append(errs, fmt.Errorf("resident id %q is not a valid id", q.ResidentID))
	}
	if _, ok := catalog.LookupMetric(q.Metric); !ok {
		errs = append(errs, fmt.Errorf("metric %q is not in the catalogue", q.Metric))
	}
	if q.From.IsZero() || q.To.IsZero() || !q.From.Before(q.To) {
		errs = append(errs, errors.New("from must be before to"))
	}
	if q.Every < 0 || q.Every%time.Millisecond != 0 || q.Every > MaxDuration {
		errs = append(errs, fmt.Errorf("every %s: must be a whole number of milliseconds up to %s", q.Every, MaxDuration))
	} else if q.Every > 0 && q.From.Before(q.To) && q.To.Sub(q.From)/q.Every >= time.Duration(q.limit()) {
		errs = append(errs, fmt.Errorf("every %s: %s holds more than %d windows", q.Every, q.To.Sub(q.From), q.limit()))
	}
	if q.Fn != "" {
		if !ValidAggregate(q.Fn) {
			errs = append(errs, fmt.Errorf("fn %q: use mean, min, max, count or last", q.Fn))
		} else if q.Every == 0 {
			errs = append(errs, fmt.Errorf("fn %q needs every (a window such as 5m)", q.Fn))
		}
	}
	if q.MaxPoints < 0 {
		errs = append(errs, errors.New("max points is negative"))
	}
	return errors.Join(errs...)
}

// Flux validates q and builds its query: the raw points of the metric,
// one table per series (a resident may have two heart-rate devices), the
// raw ones cut to the limit per series. Reader.Readings merges the series
// into one time line and, with Every, aggregates the windows itself: Flux
// 0.65 (InfluxDB 1.8) cannot push window aggregates down to storage, and
// its window() took 60-130 ms for one resident's week of one-minute
// points that storage reads out in 22 ms (make bench-api).
func (q ReadingsQuery) Flux() (Flux, error) {
	if err := q.Validate(); err != nil {
		return Flux{}, err
	}
	f := Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "readings" and r.resident_id == %s and r._field == %s)`,
		StringLit(q.Bucket), TimeLit(q.From), StopLit(q.To), StringLit(q.ResidentID), StringLit(q.Metric)).text
	if q.Every == 0 {
		n := q.limit()
		if q.MaxPoints == 0 {
			n++ // one more tells a full answer from a cut one: Readings refuses the cut one
		}
		f += Fluxf("\n  |> limit(n: %s)", Lit{text: strconv.Itoa(n)}).text
	}
	return Flux{text: f + "\n  |> keep(columns: [\"_time\", \"_value\"])"}, nil
}

// limit is the most points the query returns.
func (q ReadingsQuery) limit() int {
	if q.MaxPoints > 0 {
		return q.MaxPoints
	}
	return DefaultMaxPoints
}
