// Package i18n is the console's catalogue: every string a person reads, by
// language and key (ko.json, en.json beside this file, embedded by package
// web), and the language's way of writing dates and times.
package i18n

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Languages the console speaks; the first is the default (Korean first:
// the users are Korean care workers; English second).
var Languages = []string{"ko", "en"}

// Catalogs holds every string a person reads, by language and key.
type Catalogs map[string]map[string]string

//go:embed *.json
var files embed.FS

var builtin = sync.OnceValues(func() (Catalogs, error) { return Load(files) })

// Builtin is the catalogue carehub ships (ko.json and en.json beside this
// file), read once: the console's pages and the texts of a push (the
// rule's name on a lock screen) come from the same words.
func Builtin() (Catalogs, error) { return builtin() }

// RuleName is the catalogue's name for rule in lang ("rulename.<rule>"), the
// rule id itself when the catalogue has none.
func (cs Catalogs) RuleName(lang, rule string) string {
	if s, ok := cs[lang]["rulename."+rule]; ok {
		return s
	}
	return rule
}

// Load reads <lang>.json from fsys for every language.
func Load(fsys fs.FS) (Catalogs, error) {
	cs := Catalogs{}
	for _, lang := range Languages {
		b, err := fs.ReadFile(fsys, lang+".json")
		if err != nil {
			return nil, err
		}
		m, err := parse(b)
		if err != nil {
			return nil, fmt.Errorf("i18n/%s.json: %w", lang, err)
		}
		cs[lang] = m
	}
	return cs, nil
}

// parse reads one catalogue: a flat JSON object of strings. A key given
// twice is an error, not "the last one wins": two pages' texts under one
// key would silently show one page the other's words.
func parse(b []byte) (map[string]string, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object (%v)", err)
	}
	m := map[string]string{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		k, _ := tok.(string)
		var v string
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("key %q given twice", k)
		}
		m[k] = v
	}
	if _, err := d.Token(); err != nil { // the closing brace
		return nil, err
	}
	return m, nil
}

// T returns the text of key in lang with args formatted into it; a missing
// key shows as the key itself (the parity test keeps that from shipping).
func (cs Catalogs) T(lang, key string, args ...any) string {
	s, ok := cs[lang][key]
	if !ok {
		return key
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// DateTime formats t in loc the way the language writes a date and time:
// Korean public-document style "2026. 12. 3.(Thu) 15:05" with the weekday in Korean (24-hour, no
// leading zeros in the date), English "3 Dec 2026 (Thu) 15:05".
func (cs Catalogs) DateTime(lang string, t time.Time, loc *time.Location) string {
	t = t.In(loc)
	return cs.T(lang, "date.format", t.Year(), int(t.Month()), t.Day(),
		cs.T(lang, "date.wd."+strconv.Itoa(int(t.Weekday()))), t.Hour(), t.Minute(),
		cs.T(lang, "date.mon."+strconv.Itoa(int(t.Month()))))
}

// ShortDate is the day and month only ("12. 3.", "3 Dec").
func (cs Catalogs) ShortDate(lang string, t time.Time, loc *time.Location) string {
	t = t.In(loc)
	return cs.T(lang, "date.short", t.Year(), int(t.Month()), t.Day(), "", 0, 0,
		cs.T(lang, "date.mon."+strconv.Itoa(int(t.Month()))))
}

// Since says how long ago t was: just now, minutes, hours (time.* keys),
// "yesterday 14:20", then the full date.
func (cs Catalogs) Since(lang string, t, now time.Time, loc *time.Location) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return cs.T(lang, "time.now")
	case d < time.Hour:
		return cs.T(lang, "time.minutes", int(d/time.Minute))
	case d < 12*time.Hour:
		return cs.T(lang, "time.hours", int(d/time.Hour))
	}
	lt, ln := t.In(loc), now.In(loc)
	y := ln.AddDate(0, 0, -1)
	if lt.Year() == y.Year() && lt.YearDay() == y.YearDay() {
		return cs.T(lang, "time.yesterday", fmt.Sprintf("%02d:%02d", lt.Hour(), lt.Minute()))
	}
	return cs.DateTime(lang, t, loc)
}

// Unacked says how long an alert raised at t has waited by now: under a
// minute "just raised" ("alerts.unacked.now"), then minutes
// ("alerts.unacked"), from an hour on hours and minutes ("alerts.unacked.h");
// console.js and phone.js count on from there.
func (cs Catalogs) Unacked(lang string, t, now time.Time) string {
	switch m := int(now.Sub(t) / time.Minute); {
	case m < 1:
		return cs.T(lang, "alerts.unacked.now")
	case m >= 60:
		return cs.T(lang, "alerts.unacked.h", m/60, m%60)
	default:
		return cs.T(lang, "alerts.unacked", m)
	}
}

// Texts is lang's texts whose keys begin with prefix, keyed by the rest of
// the key, as a JSON object: for a script that looks texts up by a key the
// server gives it (data-problems: "problem." + the API's reason).
func (cs Catalogs) Texts(lang, prefix string) string {
	m := map[string]string{}
	for k, t := range cs[lang] {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			m[rest] = t
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Pick returns a supported language from a request's choice, or the
// default.
func Pick(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	for _, l := range Languages {
		if v == l {
			return l
		}
	}
	return Languages[0]
}
