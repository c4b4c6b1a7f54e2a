package web

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// Languages the console speaks; the first is the default (Korean first:
// the users are Korean care workers; English second).
var languages = []string{"ko", "en"}

// catalogs holds every string a person reads, by language and key.
type catalogs map[string]map[string]string

func loadCatalogs(fsys fs.FS) (catalogs, error) {
	cs := catalogs{}
	for _, lang := range languages {
		b, err := fs.ReadFile(fsys, "i18n/"+lang+".json")
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("i18n/%s.json: %w", lang, err)
		}
		cs[lang] = m
	}
	return cs, nil
}

// T returns the text of key in lang with args formatted into it; a missing
// key shows as the key itself (the parity test keeps that from shipping).
func (cs catalogs) T(lang, key string, args ...any) string {
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
func (cs catalogs) DateTime(lang string, t time.Time, loc *time.Location) string {
	t = t.In(loc)
	return cs.T(lang, "date.format", t.Year(), int(t.Month()), t.Day(),
		cs.T(lang, "date.wd."+strconv.Itoa(int(t.Weekday()))), t.Hour(), t.Minute(),
		cs.T(lang, "date.mon."+strconv.Itoa(int(t.Month()))))
}

// ShortDate is the day and month only ("12. 3.", "3 Dec").
func (cs catalogs) ShortDate(lang string, t time.Time, loc *time.Location) string {
	t = t.In(loc)
	return cs.T(lang, "date.short", t.Year(), int(t.Month()), t.Day(), "", 0, 0,
		cs.T(lang, "date.mon."+strconv.Itoa(int(t.Month()))))
}

// Since says how long ago t was: just now, minutes, hours (time.* keys),
// "yesterday 14:20", then the full date.
func (cs catalogs) Since(lang string, t, now time.Time, loc *time.Location) string {
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

// pickLang returns a supported language from a request's choice, or the
// default.
func pickLang(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	for _, l := range languages {
		if v == l {
			return l
		}
	}
	return languages[0]
}
