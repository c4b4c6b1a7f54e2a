package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestWebpushKeys(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"webpush", "keys"}, func(string) string { return "" }, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	env := map[string]string{"CARE_PUBLIC_URL": "https://care.example.org", "CARE_WEBPUSH_SUBJECT": "mailto:ops@example.org"}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	if env["CARE_WEBPUSH_VAPID_PUBLIC_KEY"] == "" || env["CARE_WEBPUSH_VAPID_PRIVATE_KEY"] == "" {
		t.Fatalf("keys missing from %q", out.String())
	}
	// What it prints is a configuration carehub accepts.
	out.Reset()
	if code := run(context.Background(), []string{"check"}, func(k string) string { return env[k] }, &out, &errOut); code != 0 {
		t.Fatalf("check with the printed keys: %d %s", code, errOut.String())
	}
	if code := run(context.Background(), []string{"webpush"}, func(string) string { return "" }, &out, &errOut); code != 2 {
		t.Fatalf("webpush without keys: exit %d", code)
	}
}
