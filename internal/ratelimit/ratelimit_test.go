package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestAllowRefillsAndSaysHowLong(t *testing.T) {
	k := New(1, 3, 100)
	for i := range 3 {
		if ok, _ := k.Allow("u", t0); !ok {
			t.Fatalf("token %d of a full bucket refused", i+1)
		}
	}
	ok, wait := k.Allow("u", t0)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("empty bucket: ok %v wait %v, want refused with at most 1s", ok, wait)
	}
	if ok, _ := k.Allow("other", t0); !ok {
		t.Fatal("another key shares the bucket")
	}
	if ok, _ := k.Allow("u", t0.Add(time.Second)); !ok {
		t.Fatal("no token after a second at one a second")
	}
}

func TestTakeDebtFloorsAtMinusBurst(t *testing.T) {
	k := New(10, 100, 4)
	if !k.TakeDebt("b", 500, t0) {
		t.Fatal("a full bucket refused a big batch")
	}
	if k.TakeDebt("b", 1, t0.Add(5*time.Second)) {
		t.Fatal("let in while in debt")
	}
	if !k.TakeDebt("b", 1, t0.Add(21*time.Second)) { // debt floored at -100: 200 tokens at 10/s
		t.Fatal("still refused after the floored debt was paid")
	}
}

func TestReserveAllIsAllOrNothingAndRefunds(t *testing.T) {
	k := Per(5, time.Minute, 100)
	for range 5 {
		if _, wait := k.ReserveAll(t0, "user+ip", "ip"); wait > 0 {
			t.Fatal("refused within the first five")
		}
	}
	res, wait := k.ReserveAll(t0, "other+ip", "ip")
	if wait <= 0 || wait > 12*time.Second {
		t.Fatalf("sixth on a shared key: wait %v, want (0, 12s]", wait)
	}
	if _, w := k.ReserveAll(t0, "other+ip"); w > 0 {
		t.Fatal("a refused ReserveAll took a token from the key that had some")
	}
	k.Refund(res) // nothing reserved: a no-op

	k2 := Per(1, time.Minute, 100)
	res, _ = k2.ReserveAll(t0, "a")
	k2.Refund(res)
	if _, w := k2.ReserveAll(t0, "a"); w > 0 {
		t.Fatal("a refunded token is not there again")
	}
}

func TestKeysAreBounded(t *testing.T) {
	k := New(1, 10, 100)
	for i := range 1000 {
		k.Allow(fmt.Sprint("k", i), t0)
	}
	if n := k.Len(); n > 100 {
		t.Fatalf("%d keys kept, want at most 100", n)
	}
	// Full buckets are idle: a sweep forgets them.
	k.Allow("late", t0.Add(time.Hour))
	if n := k.Len(); n != 1 {
		t.Fatalf("%d keys after an hour idle, want 1", n)
	}
}
