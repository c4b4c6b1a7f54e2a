package settings

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/testenv"
)

// TestSettingsUpdateIsAtomic: concurrent read-modify-write updates from two
// store instances (two carehub processes) lose nothing.
func TestSettingsUpdateIsAtomic(t *testing.T) {
	ns := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func() *Store {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		s, err := Open(ctx, js, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	a, b := open(), open()
	rulesToSnooze := rules.RuleNames()[:12]
	var wg sync.WaitGroup
	for i, rule := range rulesToSnooze {
		store := a
		if i%2 == 1 {
			store = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := store.Update(ctx, "r1", func(st *rules.Settings) error {
				m := map[string]rules.Snooze{}
				for k, v := range st.Snoozed {
					m[k] = v
				}
				m[rule] = rules.Snooze{Until: time.Now().Add(time.Hour), Reason: "visit " + rule}
				st.Snoozed = m
				return nil
			})
			if err != nil {
				t.Errorf("update %s: %v", rule, err)
			}
		}()
	}
	wg.Wait()
	got, err := a.Update(ctx, "r1", func(*rules.Settings) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Snoozed) != len(rulesToSnooze) {
		t.Fatalf("%d snoozes stored, want %d: concurrent updates were lost", len(got.Snoozed), len(rulesToSnooze))
	}
	// An error from change aborts without writing.
	want := fmt.Errorf("refused")
	if _, err := a.Update(ctx, "r1", func(st *rules.Settings) error { st.Mode = rules.ModeAway; return want }); err != want {
		t.Fatalf("err = %v, want the change's error", err)
	}
	if a.Settings("r1").Mode != "" {
		t.Fatal("an aborted update was written")
	}
	// Invalid settings are refused.
	if _, err := a.Update(ctx, "r1", func(st *rules.Settings) error { st.SpO2Scale = 7; return nil }); err == nil {
		t.Fatal("invalid settings stored")
	}
}
