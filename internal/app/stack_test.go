package app

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestStackStopsInReverse: a component's stops run last pushed first, and
// a start function that fails stops what it had started, and only then.
func TestStackStopsInReverse(t *testing.T) {
	start := func(fail bool, ran *[]string) (stop func(context.Context), err error) {
		var st stack
		defer st.unwindIf(&err)
		st.push(func(context.Context) { *ran = append(*ran, "server") })
		st.push(func(context.Context) { *ran = append(*ran, "connection") })
		if fail {
			return nil, errors.New("streams: no space")
		}
		return st.stop, nil
	}

	var ran []string
	stop, err := start(false, &ran)
	if err != nil || len(ran) != 0 {
		t.Fatalf("start: err %v, stopped %v before any stop", err, ran)
	}
	stop(context.Background())
	if want := []string{"connection", "server"}; !slices.Equal(ran, want) {
		t.Errorf("stop ran %v, want %v", ran, want)
	}

	ran = nil
	if _, err := start(true, &ran); err == nil {
		t.Fatal("start: no error")
	}
	if want := []string{"connection", "server"}; !slices.Equal(ran, want) {
		t.Errorf("failed start stopped %v, want %v", ran, want)
	}
}
