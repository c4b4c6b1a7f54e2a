package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestQualitySmall runs the alert-quality benchmark on 6 resident-days so
// that it keeps working: it must produce figures (alerts counted, every
// scripted emergency accounted for, detection lines printed), not meet the
// target, which `make bench-quality` checks at scale.
func TestQualitySmall(t *testing.T) {
	r, err := runQuality(context.Background(), 3, 2, 7)
	if err != nil {
		t.Fatal(err)
	}
	if r.ResidentDays != 6 {
		t.Fatalf("resident-days %g, want 6", r.ResidentDays)
	}
	if r.Emergencies == 0 || len(r.DetectionLines) != r.Emergencies {
		t.Fatalf("emergencies %d, detection lines %d", r.Emergencies, len(r.DetectionLines))
	}
	if r.Expected+r.Cancelled+r.False+r.Warnings+r.Info == 0 {
		t.Fatal("no alert at all: the evaluator saw nothing")
	}
	if r.False != len(r.FalseLines) {
		t.Fatalf("%d false alarms, %d listed", r.False, len(r.FalseLines))
	}
	var out bytes.Buffer
	printQuality(&out, r, time.Second)
	for _, want := range []string{"6 resident-days", "pages (high, critical) per resident-day", "scripted emergencies:", "SLA"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
