package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// steadyRow is one sample of carehub during a steady load: cumulative
// counters at a moment, turned into rates between rows by the printer.
type steadyRow struct {
	at          time.Duration // since the load began
	stored      float64       // readings points written to InfluxDB
	cpuSec      float64       // carehub's CPU seconds (its embedded NATS included)
	rssMB       float64       // resident set now (VmRSS), not the peak
	transitions float64       // alert transitions committed
	raised      float64       // alerts raised
	open        float64       // alerts open or acknowledged now
}

// sampleSteady samples carehub (pid, metrics at base) every period until
// stop closes, printing a row per interval as it goes so a run of minutes
// shows its trend while it runs, and returns the samples.
func sampleSteady(pid int, base string, every time.Duration, storm bool, stop <-chan struct{}, out io.Writer) []steadyRow {
	t0 := time.Now()
	take := func() steadyRow {
		r := steadyRow{at: time.Since(t0)}
		r.rssMB, r.cpuSec = procNow(pid)
		if m, err := scrape(base); err == nil {
			r.stored = m[`carehub_influx_points_written_total{measurement="readings"}`]
			r.open = m["carehub_alerts_open"]
			for k, v := range m {
				if strings.HasPrefix(k, "carehub_alert_transitions_total{") {
					r.transitions += v
					if strings.Contains(k, `transition="raised"`) {
						r.raised += v
					}
				}
			}
		}
		return r
	}
	rows := []steadyRow{take()}
	head := "     t s   msgs/s stored   CPU cores   µs/msg   RSS MB"
	if storm {
		head += "   transitions/s   open alerts"
	}
	fmt.Fprintln(out, head)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return append(rows, take())
		case <-t.C:
		}
		r := take()
		fmt.Fprintln(out, steadyLine(rows[len(rows)-1], r, storm))
		rows = append(rows, r)
	}
}

// steadyLine is the table row of the interval from a to b.
func steadyLine(a, b steadyRow, storm bool) string {
	dt := (b.at - a.at).Seconds()
	msgs, cpu := b.stored-a.stored, b.cpuSec-a.cpuSec
	us := 0.0
	if msgs > 0 {
		us = cpu / msgs * 1e6
	}
	s := fmt.Sprintf("%8.0f   %14.0f   %9.2f   %6.1f   %6.0f", b.at.Seconds(), msgs/dt, cpu/dt, us, b.rssMB)
	if storm {
		s += fmt.Sprintf("   %13.0f   %11.0f", (b.transitions-a.transitions)/dt, b.open)
	}
	return s
}

// printSteadyTotals sums the whole steady load: CPU per message over every
// stored reading, and RSS at the start, at its highest, and at the end, so
// a climb (memory that grows with the load's history) shows as end ≫ start.
func printSteadyTotals(out io.Writer, rows []steadyRow, storm bool) {
	if len(rows) < 2 {
		return
	}
	a, b := rows[0], rows[len(rows)-1]
	dt := (b.at - a.at).Seconds()
	msgs, cpu := b.stored-a.stored, b.cpuSec-a.cpuSec
	us := 0.0
	if msgs > 0 {
		us = cpu / msgs * 1e6
	}
	peak := 0.0
	for _, r := range rows {
		peak = max(peak, r.rssMB)
	}
	fmt.Fprintf(out, "steady load, carehub (embedded NATS included)  %.0f readings stored in %.0f s: %.2f cores, %.1f µs a message\n", msgs, dt, cpu/dt, us)
	fmt.Fprintf(out, "steady load, carehub RSS                       start %.0f MB   highest %.0f MB   end %.0f MB\n", a.rssMB, peak, b.rssMB)
	if storm {
		fmt.Fprintf(out, "alert storm                                    %.0f alerts raised, %.0f transitions (%.0f a second), %.0f open at the end\n",
			b.raised-a.raised, b.transitions-a.transitions, (b.transitions-a.transitions)/dt, b.open)
	}
}
