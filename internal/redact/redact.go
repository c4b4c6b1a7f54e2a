// Package redact removes credentials from URLs before carehub logs or returns
// them: the password (or a token standing in the user name) of
// nats://user:secret@host, mqtt://..., http://... and token-like query
// parameters such as InfluxDB 1.x's ?p=. Every URL carehub logs passes here,
// and so does every connect error that may quote one.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a redacted credential.
const Mask = "REDACTED"

// secretParams are query parameters that carry a credential (InfluxDB 1.x
// takes ?u=&p=; others take a token or key).
var secretParams = map[string]bool{
	"p": true, "password": true, "pass": true, "pwd": true, "token": true, "access_token": true,
	"auth": true, "authorization": true, "secret": true, "key": true, "api_key": true, "apikey": true,
	"sig": true, "signature": true, "jwt": true, "nkey": true,
}

// URL returns raw with its credentials masked: a password keeps the user
// name (nats://carehub:REDACTED@host), a user name alone is masked whole
// because NATS and others read it as a token. Text that does not parse as a
// URL is masked between "://" and the last "@" of its authority.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return userinfoRE.ReplaceAllString(raw, "://"+Mask+"@")
	}
	changed := false
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			u.User = url.UserPassword(u.User.Username(), Mask)
		} else {
			u.User = url.User(Mask)
		}
		changed = true
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if secretParams[strings.ToLower(k)] {
				q.Set(k, Mask)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if !changed {
		return raw
	}
	return u.String()
}

var (
	// urlRE finds URLs inside free text such as an error message; a comma
	// ends one, so each server of a list (CARE_NATS_URL) is masked.
	urlRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>,]+`)
	// userinfoRE is the fallback for text url.Parse refuses.
	userinfoRE = regexp.MustCompile(`://[^/\s"'<>?#]*@`)
)

// String masks the credentials of every URL inside s, e.g. an error message
// that quotes the address it failed to reach.
func String(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlRE.ReplaceAllStringFunc(s, func(m string) string {
		// A URL quoted at the end of a sentence keeps its punctuation.
		trail := ""
		for len(m) > 0 && strings.ContainsRune(".,;:)]}", rune(m[len(m)-1])) {
			trail = m[len(m)-1:] + trail
			m = m[:len(m)-1]
		}
		return URL(m) + trail
	})
}

// Err returns err with every URL in its message masked; errors.Is and
// errors.As still see the original chain. nil stays nil.
func Err(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := String(msg); red != msg {
		return &redacted{msg: red, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
