package engine

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// orderEval is fakeEval that remembers the heart rates it saw, in order.
type orderEval struct {
	fakeEval
	omu sync.Mutex
	hrs []float64
}

func (o *orderEval) Reading(r model.Reading, kind string) []rules.Signal {
	o.omu.Lock()
	o.hrs = append(o.hrs, r.Values["heart_rate"])
	o.omu.Unlock()
	return o.fakeEval.Reading(r, kind)
}

func (o *orderEval) seen() []float64 {
	o.omu.Lock()
	defer o.omu.Unlock()
	return slices.Clone(o.hrs)
}

// TestEngineReadsBatches (contract §3, issue 9 item 7): a batch on
// care.readings.batch.{partition} is evaluated reading by reading, in the
// order of the batch, between single readings published before and after.
func TestEngineReadsBatches(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ev := &orderEval{}
	m, stop := startEngine(t, e, clk, ev)
	defer stop()
	res, dev := testenv.ID("r"), testenv.ID("d")
	reading := func(hr float64, i int) model.Reading {
		return model.Reading{ResidentID: res, HomeID: "h1", DeviceID: dev, DeviceKind: "wearable",
			TS: clk.Now().Add(time.Duration(i) * time.Second), Values: map[string]float64{"heart_rate": hr}}
	}
	single := reading(61, 0)
	publishJSON(t, e.js, model.ReadingSubject(res, dev), model.ReadingJSON(&single))
	publishJSON(t, e.js, model.ReadingBatchSubject(res), model.ReadingBatchJSON([]model.Reading{
		reading(62, 1), reading(63, 2), reading(140, 3), reading(64, 4),
	}))
	last := reading(65, 5)
	publishJSON(t, e.js, model.ReadingSubject(res, dev), model.ReadingJSON(&last))

	want := []float64{61, 62, 63, 140, 64, 65}
	testenv.WaitFor(t, 5*time.Second, "six readings evaluated", func() bool { return len(ev.seen()) >= len(want) })
	if got := ev.seen(); !slices.Equal(got, want) {
		t.Fatalf("evaluated heart rates %v, want %v", got, want)
	}
	// The critical reading inside the batch raised its alert.
	waitAlert(t, m, res, "heart_rate", func(a alerts.Alert) bool { return a.Value == 140 })
}

// partitionPair returns two resident ids of one reading partition, and a
// third of another.
func partitionPair() (a, b, other string) {
	a = testenv.ID("r")
	for b == "" || other == "" {
		id := testenv.ID("r")
		if model.ReadingPartition(id) == model.ReadingPartition(a) {
			if b == "" {
				b = id
			}
		} else if other == "" {
			other = id
		}
	}
	return a, b, other
}

// TestEnginePartitionBatches (issue 14 item 2): a batch on
// care.readings.batch._p{n} holds several residents' readings. Each
// resident's readings are evaluated in the batch's order; an erased
// resident's are skipped while the others' are evaluated; a reading of a
// resident of another partition drops the whole message as forged; and
// the same batch delivered twice raises one alert, not two (the threshold
// rules ignore readings not newer than the last).
func TestEnginePartitionBatches(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	a, b, other := partitionPair()
	gate := newGate(a, b, other)
	eng, m, _ := startGatedEngine(t, e, clk, gate)
	subject := model.ReadingPartitionSubject(model.ReadingPartition(a))
	reading := func(rid string, sys float64, i int) model.Reading {
		return model.Reading{ResidentID: rid, HomeID: "h1", DeviceID: "d-" + rid, DeviceKind: "bp",
			TS: clk.Now().Add(time.Duration(i) * time.Second), Values: map[string]float64{"systolic_bp": sys}}
	}
	batch := model.ReadingBatchJSON([]model.Reading{reading(a, 120, 0), reading(b, 120, 0), reading(a, 85, 1), reading(b, 125, 1)})
	publishJSON(t, e.js, subject, batch)
	publishJSON(t, e.js, subject, batch) // a redelivery, as ingest may publish after a lost PubAck
	waitAlert(t, m, a, "systolic_bp", func(alerts.Alert) bool { return true })
	waitAcked(t, e, model.StreamReadings)
	bp := 0
	for _, al := range m.List(alerts.Filter{ResidentID: a}) {
		if al.Occurrences != 1 {
			t.Errorf("alert %s of %s counted %d times after a batch delivered twice", al.Rule, a, al.Occurrences)
		}
		if al.Rule == "systolic_bp" {
			bp++
		}
	}
	if bp != 1 {
		t.Errorf("%d systolic_bp alerts of %s, want 1", bp, a)
	}
	if got := m.List(alerts.Filter{ResidentID: b}); len(got) != 0 {
		t.Fatalf("alerts of %s with normal readings: %+v", b, got)
	}

	// Forged: a resident of another partition in the batch.
	publishJSON(t, e.js, subject, model.ReadingBatchJSON([]model.Reading{reading(b, 85, 2), reading(other, 85, 2)}))
	// Erased: b's reading is skipped, a's still evaluated.
	gate.remove(b)
	publishJSON(t, e.js, subject, model.ReadingBatchJSON([]model.Reading{reading(b, 85, 3), reading(a, 120, 3)}))
	waitAcked(t, e, model.StreamReadings)
	for _, r := range []string{b, other} {
		if got := m.List(alerts.Filter{ResidentID: r}); len(got) != 0 {
			t.Errorf("alerts of %s from a forged or erased reading: %+v", r, got)
		}
	}
	if got := eng.dropped.With(model.StreamReadings, DropSubjectMismatch).Value(); got != 1 {
		t.Errorf("readings dropped as subject_mismatch = %v, want 1", got)
	}
}
