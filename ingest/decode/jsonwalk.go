package decode

import (
	"encoding/json"
	"errors"
	"strconv"
)

// jsonWalker reads JSON that json.Valid has already accepted, without building
// values. It relies on that check for structure, but bounds-checks every
// index and stops when it makes no progress, so that no input can make it
// panic or loop.
type jsonWalker struct {
	b    []byte
	i    int
	mark int // position of the last member next reported, to detect no progress
}

func (w *jsonWalker) ws() {
	for w.i < len(w.b) {
		switch w.b[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

// peek returns the first byte of the next token, 0 at the end.
func (w *jsonWalker) peek() byte {
	w.ws()
	if w.i < len(w.b) {
		return w.b[w.i]
	}
	return 0
}

// open consumes the '{' or '[' that starts an object or array.
func (w *jsonWalker) open() {
	w.ws()
	if w.i < len(w.b) {
		w.i++
	}
}

// next reports whether the object or array being walked has another member,
// consuming the ',' before it or the closing bracket after the last.
func (w *jsonWalker) next() bool {
	switch w.peek() {
	case ',':
		w.i++
		return true
	case '}', ']':
		w.i++
		return false
	case 0:
		return false
	}
	if w.i == w.mark { // the last member was not consumed: stop
		w.i = len(w.b)
		return false
	}
	w.mark = w.i
	return true
}

// key reads an object member's name and the ':' after it.
func (w *jsonWalker) key() []byte {
	k := w.stringBytes()
	if w.peek() == ':' {
		w.i++
	}
	return k
}

// str reads a string value; ok is false, with nothing consumed, when the
// next value is not a string.
func (w *jsonWalker) str() ([]byte, bool) {
	if w.peek() != '"' {
		return nil, false
	}
	return w.stringBytes(), true
}

// num reads a number value; ok is false when it is not a number (the value
// is consumed either way).
func (w *jsonWalker) num() (float64, bool) {
	c := w.peek()
	lit := w.skip()
	if c != '-' && (c < '0' || c > '9') {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return v, true
}

// stringBytes reads a string and returns its content, unescaped. Strings
// without escapes, the usual case, are returned in place without copying.
func (w *jsonWalker) stringBytes() []byte {
	raw, escaped := w.rawString()
	if !escaped {
		return raw
	}
	var s string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	if json.Unmarshal(q, &s) != nil {
		return raw
	}
	return []byte(s)
}

// rawString reads a string token and returns the bytes between its quotes.
func (w *jsonWalker) rawString() (raw []byte, escaped bool) {
	w.ws()
	if w.i >= len(w.b) || w.b[w.i] != '"' {
		return nil, false
	}
	j := w.i + 1
	for j < len(w.b) {
		c := w.b[j]
		if c == '\\' {
			escaped = true
			j += 2
			continue
		}
		if c == '"' {
			break
		}
		j++
	}
	j = min(j, len(w.b))
	raw = w.b[w.i+1 : j]
	w.i = j + 1
	return raw, escaped
}

// skip consumes one value of any kind and returns its bytes.
func (w *jsonWalker) skip() []byte {
	w.ws()
	start := w.i
	if w.i >= len(w.b) {
		return nil
	}
	switch w.b[w.i] {
	case '"':
		w.rawString()
	case '{', '[':
		depth := 0
	scan:
		for w.i < len(w.b) {
			switch w.b[w.i] {
			case '"':
				w.rawString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					w.i++
					break scan
				}
			}
			w.i++
		}
	default:
		for w.i < len(w.b) {
			switch w.b[w.i] {
			case ',', '}', ']', ':', ' ', '\t', '\n', '\r':
				return w.b[start:w.i]
			}
			w.i++
		}
	}
	return w.b[start:min(w.i, len(w.b))]
}
