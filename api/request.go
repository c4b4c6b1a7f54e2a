package api

// Reading requests and writing answers, the same for every resource.

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
)

// wireTime writes a time in API answers: RFC 3339 in UTC with the
// milliseconds it was stored with (readings are stored to the
// millisecond), and none when there are none, so two readings within one
// second keep their order and "…:05Z" stays as it was.
func wireTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999Z07:00")
}

// truncate cuts s to n bytes for an error message that quotes it.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func strictUnmarshal(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// decode parses a JSON body strictly: unknown fields are errors, so a typo
// in a field name is not silently ignored.
func decode(c *fiber.Ctx, v any) error {
	if err := strictUnmarshal(c.Body(), v); err != nil {
		return ErrMalformedJSON.with("the request body is not valid JSON: " + err.Error())
	}
	return nil
}
