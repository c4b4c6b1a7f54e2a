package eval

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/model"
)

// populate gives n residents 8 devices each (wearable, radar, PIR, door,
// bed pad, room sensor, BP monitor, SOS button), one reading or status from
// each, and a tick, so every per-resident and per-device state exists.
func populate(e *Evaluator, n int) {
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("r%05d", i)
		home := fmt.Sprintf("h%05d", i)
		rd := func(dev, kind string, vals map[string]float64) {
			e.Reading(model.Reading{ResidentID: id, HomeID: home, DeviceID: id + "-" + dev, DeviceKind: kind, TS: t0, Values: vals}, "")
		}
		rd("w", "wearable", map[string]float64{"heart_rate": 72, "spo2": 97, "body_temp": 36.6, "steps": 100, "battery_pct": 80})
		rd("radar", "radar", map[string]float64{"presence": 1, "resp_rate": 15, "heart_rate": 70})
		rd("pir", "motion", map[string]float64{"motion": 2})
		rd("door", "door", map[string]float64{"door_open": 0})
		rd("bed", "bed", map[string]float64{"in_bed": 0})
		rd("env", "env", map[string]float64{"room_temp": 22, "humidity": 45, "co2": 600, "pm2_5": 10})
		rd("bp", "bp", map[string]float64{"systolic_bp": 125, "diastolic_bp": 80})
		pct := 90.0
		e.Status(model.Status{ResidentID: id, HomeID: home, DeviceID: id + "-sos", DeviceKind: "sos", TS: t0, Online: true, BatteryPct: &pct})
	}
	e.Tick(t0.Add(time.Second))
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMemoryPerResidentBounded keeps the per-resident state small enough
// for one process to watch a district: under 16 KiB with 8 devices.
func TestMemoryPerResidentBounded(t *testing.T) {
	const n = 2000
	before := heapAlloc()
	e := New(time.UTC, settingsMap{})
	populate(e, n)
	per := float64(heapAlloc()-before) / n
	runtime.KeepAlive(e)
	t.Logf("%.0f bytes per resident (8 devices)", per)
	if per > 16<<10 {
		t.Fatalf("%.0f bytes per resident, want under 16 KiB", per)
	}
}

// BenchmarkResidentMemory reports the heap held per resident for 10,000
// residents with 8 devices each.
func BenchmarkResidentMemory(b *testing.B) {
	const n = 10000
	for b.Loop() {
		before := heapAlloc()
		e := New(time.UTC, settingsMap{})
		populate(e, n)
		b.ReportMetric(float64(heapAlloc()-before)/n, "bytes/resident")
		runtime.KeepAlive(e)
	}
}

// BenchmarkReading measures Reading throughput: a wearable's heart rate and
// SpO2 over 10,000 residents, round robin, time moving a second per round.
func BenchmarkReading(b *testing.B) {
	const n = 10000
	e := New(time.UTC, settingsMap{})
	populate(e, n)
	rs := make([]model.Reading, n)
	for i := range rs {
		id := fmt.Sprintf("r%05d", i)
		rs[i] = model.Reading{ResidentID: id, HomeID: "h", DeviceID: id + "-w", DeviceKind: "wearable",
			Values: map[string]float64{"heart_rate": 72, "spo2": 97}}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := rs[i%n]
		r.TS = t0.Add(time.Duration(2+i/n) * time.Second)
		e.Reading(r, "wearable")
		i++
	}
}

// BenchmarkTick measures one tick over 10,000 residents with 8 devices.
func BenchmarkTick(b *testing.B) {
	e := New(time.UTC, settingsMap{})
	populate(e, 10000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e.Tick(t0.Add(time.Duration(2+i) * time.Second))
		i++
	}
}

// TestConcurrentUse drives Reading, Event, Status and Tick from several
// goroutines (run with -race) and checks every resident's heart-rate rule
// raised exactly once.
func TestConcurrentUse(t *testing.T) {
	e := New(time.UTC, settingsMap{})
	const n, workers = 200, 4
	done := make(chan int, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			raised := 0
			for i := w; i < n; i += workers {
				id := fmt.Sprintf("r%03d", i)
				for k := 0; k <= 5; k++ {
					r := model.Reading{ResidentID: id, DeviceID: "w", DeviceKind: "wearable", TS: t0.Add(time.Duration(k) * time.Minute),
						Values: map[string]float64{"heart_rate": 120}}
					raised += len(only(e.Reading(r, ""), rules.RuleHeartRate))
				}
				e.Event(model.Event{ResidentID: id, DeviceID: "pir", DeviceKind: "motion", TS: t0, Type: "motion"})
				e.Tick(t0.Add(time.Second))
			}
			done <- raised
		}(w)
	}
	total := 0
	for w := 0; w < workers; w++ {
		total += <-done
	}
	if total != n {
		t.Fatalf("%d heart_rate signals, want %d", total, n)
	}
	if _, err := e.Snapshot(); err != nil {
		t.Fatal(err)
	}
}
