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
