package config

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/carehub/carehub/internal/natsx"
)

// parser reads CARE_* variables one by one, keeping every refusal so that
// Load reports them all at once.
type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) fail(format string, a ...any) { p.errs = append(p.errs, fmt.Errorf(format, a...)) }

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

// secret reads NAME, or the file named by NAME_FILE; setting both is an error
// because one of them would be silently ignored.
func (p *parser) secret(name string) string {
	v, file := p.getenv(name), p.getenv(name+"_FILE")
	if v != "" && file != "" {
		p.fail("both %s and %s_FILE are set: keep one", name, name)
		return ""
	}
	if file == "" {
		return v
	}
	b, err := os.ReadFile(file)
	if err != nil {
		p.fail("%s_FILE=%q cannot be read (%v): point it at a readable file holding the secret", name, file, err)
		return ""
	}
	return strings.TrimSpace(string(b))
}

// bool reads true/false (also 1/0, yes/no); unset is false.
func (p *parser) bool(name string) bool {
	switch v := strings.ToLower(strings.TrimSpace(p.getenv(name))); v {
	case "", "false", "0", "no":
		return false
	case "true", "1", "yes":
		return true
	default:
		p.fail("%s=%q: use true or false", name, v)
		return false
	}
}

func (p *parser) int(name string, def int) int {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		p.fail("%s=%q is not a whole number", name, v)
		return def
	}
	return n
}

// size reads a byte count: a whole number with an optional KiB, MiB or GiB
// suffix (as Go's GOMEMLIMIT is written), or 0 / off for none.
func (p *parser) size(name string, def int64) int64 {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	if v == "off" {
		return 0
	}
	n, err := ParseSize(v)
	if err != nil {
		p.fail("%s=%q is not a size: write it like 160MiB, 1GiB or 0 (none)", name, v)
		return def
	}
	return n
}

// ParseSize parses a byte count with an optional KiB, MiB or GiB suffix.
func ParseSize(s string) (int64, error) {
	unit := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, unit = n, u.n
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/unit {
		return 0, fmt.Errorf("size %q: want a whole number of bytes, KiB, MiB or GiB", s)
	}
	return n * unit, nil
}

// streamSizes reads a list of stream sizes such as
// "CARE_READINGS=20GiB,CARE_AUDIT=8GiB".
func (p *parser) streamSizes(name string) map[string]int64 {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return nil
	}
	out := map[string]int64{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		stream, size, ok := strings.Cut(item, "=")
		stream = strings.TrimSpace(stream)
		if !ok || !slices.Contains(natsx.StreamNames, stream) {
			p.fail("%s: %q is not STREAM=SIZE with STREAM one of %s, e.g. CARE_READINGS=20GiB,CARE_AUDIT=8GiB", name, item, strings.Join(natsx.StreamNames, ", "))
			continue
		}
		n, err := ParseSize(strings.TrimSpace(size))
		if err != nil || n < 1<<20 {
			p.fail("%s: %s=%q is not a size of at least 1MiB: write it like 20GiB or 512MiB", name, stream, size)
			continue
		}
		out[stream] = n
	}
	return out
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	d, err := ParseDuration(v)
	if err != nil {
		p.fail("%s=%q is not a duration: write it like 90d, 12h, 250ms", name, v)
		return def
	}
	return d
}

// ParseDuration is time.ParseDuration that also takes whole days ("90d") and
// weeks ("2w"), as retention periods are usually written.
func ParseDuration(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			if k, err := strconv.Atoi(n); err == nil && k >= 0 {
				return time.Duration(k) * unit, nil
			}
		}
	}
	return time.ParseDuration(s)
}

// sanitize turns a host name into an MQTT client id fragment.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
