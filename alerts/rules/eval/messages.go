package eval

import (
	"strconv"
	"time"

	"github.com/carehub/carehub/internal/catalog"
)

// Messages are short, for a phone's notification line, and never carry a
// name or anything else personal: the resident is an id in the signal.

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func opText(op string) string {
	switch op {
	case "<=":
		return "≤"
	case ">=":
		return "≥"
	}
	return op
}

// thresholdMsg reads e.g. "heart_rate 135 /min for 5m0s (≥ 131)".
func thresholdMsg(metric string, v float64, op string, thr float64, held time.Duration) string {
	m, _ := catalog.LookupMetric(metric)
	s := metric + " " + num(v) + " " + m.Unit
	if held > 0 {
		s += " for " + held.Round(time.Second).String()
	}
	if op != "" {
		s += " (" + opText(op) + " " + num(thr) + ")"
	}
	return s
}

func news2Msg(total int, single3 bool, params int) string {
	s := "NEWS2 " + strconv.Itoa(total)
	if single3 {
		s += ", a parameter scoring 3"
	}
	if params > 0 {
		s += " (" + strconv.Itoa(params) + " of 5 vitals)"
	}
	return s
}

func batteryMsg(v float64, low bool) string {
	if low {
		return "battery " + num(v) + " %"
	}
	return "battery back to " + num(v) + " %"
}

func countMsg(n int) string {
	if n == 1 {
		return "the home's only motion sensor is offline or out of battery"
	}
	return "all " + strconv.Itoa(n) + " motion sensors of the home are offline or out of battery"
}

func idleMsg(d time.Duration) string {
	return "no activity for " + d.Truncate(time.Minute).String()
}

func silentMsg(d time.Duration, lwt bool) string {
	if lwt {
		return "Last Will received"
	}
	return "silent for " + d.Truncate(time.Second).String()
}
