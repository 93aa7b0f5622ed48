package guard_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"vigil/internal/auth/guard"
	"vigil/internal/clock"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

const (
	user     = "u@example.org"
	attacker = "127.0.0.2"
	owner    = "127.0.0.3"
)

func newGuard(cfg guard.Config) (*guard.Guard, *clock.Manual) {
	clk := clock.NewManual(t0)
	cfg.Clock = clk
	return guard.New(cfg), clk
}

// attempt is one login attempt as the service makes it: Check, then (in
// place of the hash) Failure or Success. It reports whether it got to hash.
func attempt(g *guard.Guard, account, source string, trusted, right bool) (time.Duration, bool) {
	wait, ok := g.Check(account, source, trusted)
	if !ok {
		return wait, false
	}
	if right {
		g.Success(account, source)
	} else {
		g.Failure(account, source)
	}
	return 0, true
}

// Security row 20: 10,000 wrong passwords for U from one source, as fast as
// they come over a simulated 60 s, reach the hash at most 150 times, and the
// real user from another source logs in at once.
func TestGuessingBeforeHashing(t *testing.T) {
	g, clk := newGuard(guard.Config{})
	hashed := 0
	for range 10_000 {
		if _, ok := attempt(g, user, attacker, false, false); ok {
			hashed++
		}
		clk.Advance(6 * time.Millisecond)
	}
	t.Logf("10,000 wrong attempts over %v: %d reached the hash", clk.Now().Sub(t0), hashed)
	if hashed > 150 {
		t.Errorf("%d attempts reached the hash, want ≤ 150", hashed)
	}
	if hashed < 5 {
		t.Errorf("%d attempts reached the hash, want the 5 free ones at least", hashed)
	}
	// The owner, untrusted and with no failures of their own, while the
	// account has fewer than FreePerAccount failures.
	if wait, ok := attempt(g, user, owner, false, true); !ok {
		t.Errorf("the owner's login from another source was refused for %v", wait)
	}
	// The attacker is still delayed after the owner's success: the pair
	// keeps its count.
	if _, ok := g.Check(user, attacker, false); ok {
		t.Errorf("the attacker's pair was reset by the owner's success")
	}
	if s := g.Stats(); s.Refused < 9_000 {
		t.Errorf("Stats.Refused = %d, want ≥ 9000", s.Refused)
	}
}

// A burst of parallel guesses gets no more hashes than the same guesses one
// after another: admitted attempts count as failures while in flight.
func TestBurstInFlight(t *testing.T) {
	g, _ := newGuard(guard.Config{})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if _, ok := g.Check(user, attacker, false); ok {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 5 {
		t.Errorf("%d of 200 simultaneous attempts admitted, want FreePerSource = 5", n)
	}
}

// An attempt admitted but never resolved counts for a minute, then not.
func TestUnresolvedAttemptLapses(t *testing.T) {
	g, clk := newGuard(guard.Config{FreePerSource: 1})
	if _, ok := g.Check(user, attacker, false); !ok {
		t.Fatal("first attempt refused")
	}
	if _, ok := g.Check(user, attacker, false); ok {
		t.Fatal("second attempt admitted while the first is in flight")
	}
	clk.Advance(time.Minute)
	if wait, ok := g.Check(user, attacker, false); !ok {
		t.Errorf("attempt refused for %v a minute after an unresolved one", wait)
	}
}

// Delays grow 1 s, 2 s, 4 s … from the last failure, cap at MaxDelay, and
// once the delay has passed the pair may try again: never a permanent lock.
// A refused attempt does not lengthen the delay.
func TestPairBackoff(t *testing.T) {
	g, clk := newGuard(guard.Config{})
	for i := range 5 {
		if wait, ok := attempt(g, user, attacker, false, false); !ok {
			t.Fatalf("free failure %d refused for %v", i+1, wait)
		}
	}
	var waits []time.Duration
	for range 20 {
		wait, ok := g.Check(user, attacker, false)
		if ok {
			t.Fatalf("attempt admitted with no wait after %d delays", len(waits))
		}
		waits = append(waits, wait)
		// Refused tries half way through change nothing.
		clk.Advance(wait / 2)
		for range 3 {
			if w, ok := g.Check(user, attacker, false); ok || w != wait-wait/2 {
				t.Fatalf("retry half way: wait %v, %v; want %v, false", w, ok, wait-wait/2)
			}
		}
		clk.Advance(wait - wait/2)
		if w, ok := attempt(g, user, attacker, false, false); !ok {
			t.Fatalf("attempt refused for %v after waiting out %v", w, wait)
		}
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900, 900, 900, 900, 900, 900, 900, 900}
	for i := range want {
		if waits[i] != want[i]*time.Second {
			t.Errorf("delays %v, want %v seconds", waits, want)
			break
		}
	}
}

// Many sources against one account: the account-wide delay starts after
// FreePerAccount consecutive failures, becomes MaxDelay after
// MaxConsecutive, is skipped by trusted attempts, and is never permanent.
func TestAccountWide(t *testing.T) {
	g, clk := newGuard(guard.Config{})
	src := func(i int) string { return fmt.Sprintf("10.9.%d.%d", i/256, i%256) }
	for i := range 20 {
		if wait, ok := attempt(g, user, src(i), false, false); !ok {
			t.Fatalf("failure %d from a fresh source refused for %v", i+1, wait)
		}
	}
	if wait, ok := g.Check(user, "fresh", false); ok || wait != time.Second {
		t.Errorf("after 20 account failures: %v, %v; want 1s, refused", wait, ok)
	}
	// Drive the account to MaxConsecutive failures from ever new sources,
	// waiting out each delay.
	for i := 20; i < 100; {
		wait, ok := attempt(g, user, src(i), false, false)
		if !ok {
			if wait > 15*time.Minute {
				t.Fatalf("wait %v over MaxDelay", wait)
			}
			clk.Advance(wait)
			continue
		}
		i++
	}
	wait, ok := g.Check(user, "fresh", false)
	if ok || wait != 15*time.Minute {
		t.Errorf("after 100 account failures, untrusted: %v, %v; want 15m0s, refused", wait, ok)
	}
	if wait, ok := g.Check(user, owner, true); !ok {
		t.Errorf("after 100 account failures, trusted: refused for %v", wait)
	}
	g.Failure(user, owner) // the owner mistyped
	clk.Advance(15 * time.Minute)
	if wait, ok := g.Check(user, "fresh", false); !ok {
		t.Errorf("untrusted attempt after MaxDelay refused for %v: a permanent lock", wait)
	}
	g.Success(user, "fresh")
	if wait, ok := g.Check(user, "fresher", false); !ok {
		t.Errorf("after a success the account is still delayed by %v", wait)
	}
}

// MaxConsecutive consecutive account failures make every untrusted
// attempt wait MaxDelay, even while the exponential delay is shorter.
func TestMaxConsecutive(t *testing.T) {
	g, _ := newGuard(guard.Config{FreePerAccount: 95, MaxDelay: time.Hour})
	for i := range 99 {
		g.Failure(user, fmt.Sprint("s", i))
	}
	if wait, _ := g.Check(user, "fresh", false); wait != 16*time.Second {
		t.Errorf("after 99 failures: wait %v, want 16s", wait)
	}
	g.Failure(user, "s99")
	if wait, _ := g.Check(user, "fresh", false); wait != time.Hour {
		t.Errorf("after 100 failures: wait %v, want MaxDelay 1h0m0s", wait)
	}
}

// One source spraying many accounts is delayed after FreePerSourceTotal
// failures, whatever the account; a success does not reset that; a
// trusted attempt skips it.
func TestSpray(t *testing.T) {
	g, _ := newGuard(guard.Config{})
	for i := range 50 {
		if wait, ok := attempt(g, fmt.Sprintf("user%d@example.org", i), attacker, false, false); !ok {
			t.Fatalf("spray failure %d refused for %v", i+1, wait)
		}
	}
	if wait, ok := g.Check("next@example.org", attacker, false); ok || wait != time.Second {
		t.Errorf("51st account from the sprayer: %v, %v; want 1s, refused", wait, ok)
	}
	g.Success("mine@example.org", attacker)
	if _, ok := g.Check("next@example.org", attacker, false); ok {
		t.Errorf("a success reset the sprayer's allowance")
	}
	if wait, ok := g.Check("mine@example.org", attacker, true); !ok {
		t.Errorf("trusted attempt from a sprayed source refused for %v", wait)
	}
}

func TestSuccessResets(t *testing.T) {
	g, _ := newGuard(guard.Config{})
	for range 5 {
		attempt(g, user, owner, false, false)
	}
	if _, ok := g.Check(user, owner, false); ok {
		t.Fatal("sixth attempt admitted at once")
	}
	g.Success(user, owner)
	for i := range 5 {
		if wait, ok := attempt(g, user, owner, false, false); !ok {
			t.Fatalf("after Success, failure %d refused for %v", i+1, wait)
		}
	}
}

func TestWindowForgets(t *testing.T) {
	g, clk := newGuard(guard.Config{Window: time.Hour})
	for i := range 30 {
		g.Failure(user, fmt.Sprint("s", i))
	}
	if _, ok := g.Check(user, "fresh", false); ok {
		t.Fatal("admitted after 30 account failures")
	}
	clk.Advance(time.Hour)
	if wait, ok := g.Check(user, "fresh", false); !ok {
		t.Errorf("still refused for %v a Window after the last failure", wait)
	}
	g.Success(user, "fresh")
	if s := g.Stats(); s.Pairs != 0 || s.Accounts != 0 || s.Sources != 1 {
		t.Errorf("Stats after the Window = %+v, want only the fresh source left", s)
	}
}

// A million distinct sources (a tenth as many under the race detector) do
// not grow memory past MaxEntries per table, and the account under attack,
// used on every failure, is never the entry evicted.
func TestMemoryBounded(t *testing.T) {
	n, limit := 1_000_000, 10_000
	if raceEnabled {
		n = 100_000
	}
	g, clk := newGuard(guard.Config{MaxEntries: limit})
	buf := make([]byte, 0, 16)
	for i := range n {
		buf = strconv.AppendInt(append(buf[:0], "10."...), int64(i), 10)
		g.Failure(user, string(buf))
		if i%1000 == 0 {
			clk.Advance(time.Millisecond)
		}
	}
	s := g.Stats()
	if s.Pairs != limit || s.Sources != limit || s.Accounts != 1 {
		t.Errorf("tables hold %d pairs, %d sources, %d accounts; want %d, %d, 1", s.Pairs, s.Sources, s.Accounts, limit, limit)
	}
	if want := int64(2 * (n - limit)); s.Evicted != want {
		t.Errorf("Evicted = %d, want %d", s.Evicted, want)
	}
	if _, ok := g.Check(user, "fresh", false); ok {
		t.Errorf("the account's failures were forgotten")
	}
}

// Hash runs at most MaxConcurrentHashes functions at once; the rest wait,
// and a waiter whose context ends gives up without running.
func TestHashConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := guard.New(guard.Config{MaxConcurrentHashes: 3})
		release := make(chan struct{})
		var running, peak atomic.Int64
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				err := g.Hash(t.Context(), func() {
					n := running.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					<-release
					running.Add(-1)
				})
				if err != nil {
					t.Errorf("Hash: %v", err)
				}
			})
		}
		synctest.Wait()
		if s := g.Stats(); s.HashesRunning != 3 || s.HashesWaiting != 17 || s.Hashes != 3 {
			t.Errorf("Stats with all slots held = %+v, want 3 running, 17 waiting, 3 started", s)
		}
		ctx, cancel := context.WithCancel(t.Context())
		ran := false
		done := make(chan error)
		go func() { done <- g.Hash(ctx, func() { ran = true }) }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || ran {
			t.Errorf("Hash with its context cancelled while waiting = %v, ran %v; want context.Canceled, not run", err, ran)
		}
		close(release)
		wg.Wait()
		if p := peak.Load(); p != 3 {
			t.Errorf("peak concurrent hashes %d, want 3", p)
		}
		if g.Hashes() != 20 {
			t.Errorf("Hashes() = %d, want 20", g.Hashes())
		}
		if s := g.Stats(); s.HashesRunning != 0 || s.HashesWaiting != 0 {
			t.Errorf("Stats after all = %+v", s)
		}
	})
}

// The zero Config works, on the real clock, with NumCPU hash slots.
func TestZeroConfig(t *testing.T) {
	g := guard.New(guard.Config{})
	if _, ok := attempt(g, user, owner, false, false); !ok {
		t.Fatal("first attempt refused")
	}
	var wg sync.WaitGroup
	var running, peak atomic.Int64
	for range 4 * runtime.NumCPU() {
		wg.Go(func() {
			g.Hash(context.Background(), func() {
				n := running.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				runtime.Gosched()
				running.Add(-1)
			})
		})
	}
	wg.Wait()
	if p := peak.Load(); p > int64(runtime.NumCPU()) {
		t.Errorf("peak concurrent hashes %d over NumCPU %d", p, runtime.NumCPU())
	}
}
