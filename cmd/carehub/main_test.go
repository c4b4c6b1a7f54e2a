package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		wantOut    string
		wantErrOut string
	}{
		{"no command", nil, nil, 2, "", "usage:"},
		{"unknown command", []string{"frobnicate"}, nil, 2, "", `unknown command "frobnicate"`},
		{"version", []string{"version"}, nil, 0, "carehub dev", ""},
		{"help", []string{"help"}, nil, 0, "carehub serve", ""},
		{"valid defaults", []string{"check"}, map[string]string{}, 0, "configuration ok", ""},
		{"bad timezone", []string{"check"}, map[string]string{"CARE_TIMEZONE": "Mars/Olympus"}, 2, "", "CARE_TIMEZONE"},
		{"bad mqtt url", []string{"serve"}, map[string]string{"CARE_MQTT_URL": "1883"}, 2, "", "tcp://127.0.0.1:1883"},
		{"short admin token", []string{"check"}, map[string]string{"CARE_ADMIN_TOKEN": "short"}, 2, "", "shorter than 16 characters"},
		{"secret and file", []string{"check"}, map[string]string{"CARE_INFLUX_TOKEN": "x", "CARE_INFLUX_TOKEN_FILE": "/nope"}, 2, "", "keep one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tt.args, env(tt.env), &out, &errOut)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr: %s)", code, tt.code, errOut.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout %q does not contain %q", out.String(), tt.wantOut)
			}
			if !strings.Contains(errOut.String(), tt.wantErrOut) {
				t.Errorf("stderr %q does not contain %q", errOut.String(), tt.wantErrOut)
			}
		})
	}
}
