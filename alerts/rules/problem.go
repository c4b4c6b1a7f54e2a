package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Problem is one fault Validate found, in a form a client can point at
// and translate: Field is the field's path in the JSON body, its segments
// joined by dots as the console names its inputs
// ("limits.heart_rate.bands.0.value"); Reason is a fixed English sentence
// with fmt verbs, the key a translation is found by (web/i18n:
// "problem."+Reason); Args are its values, JSON-friendly (durations as
// their strings).
type Problem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
	Args   []any  `json:"args"`
}

// Error reads as the API's message always has:
// limits["heart_rate"].bands[0].value: 400 is outside 0–300.
func (p Problem) Error() string {
	return goPath(p.Field) + ": " + fmt.Sprintf(p.Reason, p.Args...)
}

// keyed are the fields whose next segment is a map key.
var keyed = map[string]bool{"limits": true, "disabled": true, "snoozed": true, "report_intervals": true}

// goPath writes a dotted field path with map keys quoted and indexes in
// brackets.
func goPath(field string) string {
	var b strings.Builder
	segs := strings.Split(field, ".")
	for i, s := range segs {
		_, err := strconv.Atoi(s)
		switch {
		case i > 0 && keyed[segs[i-1]]:
			b.WriteString("[" + strconv.Quote(s) + "]")
		case i > 0 && err == nil:
			b.WriteString("[" + s + "]")
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		}
	}
	return b.String()
}

// Problems lists the problems in an error Validate returned (none for an
// error of another kind).
func Problems(err error) []Problem {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []Problem
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
		return out
	}
	var p Problem
	if errors.As(err, &p) {
		return []Problem{p}
	}
	return nil
}

// problems collects Problems under a path prefix.
type problems struct {
	prefix string
	list   []error
}

func (ps *problems) add(field, reason string, args ...any) {
	switch {
	case field == "":
		field = ps.prefix
	case ps.prefix != "":
		field = ps.prefix + "." + field
	}
	ps.list = append(ps.list, Problem{Field: field, Reason: reason, Args: args})
}
