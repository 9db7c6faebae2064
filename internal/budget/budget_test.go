package budget

import (
	"testing"
	"time"
)

// The share: a session past its share waits, unless all it holds is the
// frame it is growing; its neighbour is not affected.
func TestShareThrottlesTheHoarderOnly(t *testing.T) {
	b := New(1600, nil, nil) // share 100, reserve 100
	hoarder, neighbour := b.NewAccount(), b.NewAccount()
	if !hoarder.TryTake(60, 0, Request) || !hoarder.TryTake(40, 0, Request) {
		t.Fatal("within the share refused")
	}
	if hoarder.TryTake(1, 0, Request) {
		t.Fatal("past the share, holding other bytes: taken")
	}
	if !neighbour.TryTake(100, 0, Request) {
		t.Fatal("the neighbour is throttled by the hoarder")
	}
	one := b.NewAccount()
	if !one.TryTake(100, 0, Request) || !one.TryTake(500, 100, Request) {
		t.Fatal("a frame growing past the share, with nothing else held, refused")
	}
	hoarder.Release(100)
	neighbour.Release(100)
	one.Release(600)
	if b.Used() != 0 || b.Peak() != 800 {
		t.Fatalf("used %d, peak %d; want 0, 800", b.Used(), b.Peak())
	}
}

// The reserve: requests and answers that are not next in line stop a
// share short of the limit; the answer a client waits for may use it.
func TestReserveIsForTheHeadAnswer(t *testing.T) {
	b := New(1600, nil, nil)
	var accts []*Account
	for range 15 {
		a := b.NewAccount()
		if !a.TryTake(100, 0, Request) {
			t.Fatal("refused below the reserve")
		}
		accts = append(accts, a)
	}
	late := b.NewAccount()
	if late.TryTake(1, 0, Request) {
		t.Fatal("a request took from the reserve")
	}
	if !late.TryTake(100, 0, Head) {
		t.Fatal("the head answer was refused the reserve")
	}
	if late.TryTake(1, 0, Head) {
		t.Fatal("past the limit")
	}
	if b.Used() > b.Limit() {
		t.Fatalf("used %d past the limit %d", b.Used(), b.Limit())
	}
	for _, a := range accts {
		a.Release(100)
	}
	late.Release(100)
}

// Take waits for a release, and gives up when done closes.
func TestTakeWaitsAndGivesUp(t *testing.T) {
	hits := 0
	b := New(1600, nil, func() { hits++ })
	a := b.NewAccount()
	a.TryTake(100, 0, Request)
	got := make(chan bool)
	go func() { got <- a.Take(50, 0, Request, nil) }()
	select {
	case <-got:
		t.Fatal("taken past the share")
	case <-time.After(20 * time.Millisecond): // nothing to wait for: it must not happen at all
	}
	a.Release(60)
	if !<-got {
		t.Fatal("not taken after the release")
	}
	done := make(chan struct{})
	go func() { got <- a.Take(100, 0, Request, done) }()
	close(done)
	if <-got {
		t.Fatal("taken although done closed and nothing was released")
	}
	if a.Held() != 90 || hits != 2 {
		t.Fatalf("held %d (want 90), hits %d (want 2)", a.Held(), hits)
	}
}
