// Package guard throttles online password guessing before any password
// hash is spent, and caps how many hashes run at once (security row 20), so
// guessing can neither burn the server's CPU nor lock the real user out.
//
// Failures are counted three ways, each with some free failures and then an
// exponentially growing delay since the last one (1 s, 2 s, 4 s … up to
// MaxDelay):
//
//   - per (account, source) pair: one source guessing one account;
//   - per source across all accounts: one source spraying many accounts,
//     with a larger free allowance;
//   - per account across all sources: many sources guessing one account,
//     counted as consecutive failures until a success. After
//     MaxConsecutive of them every untrusted attempt waits MaxDelay.
//
// Everything is soft: a refused attempt changes nothing, so no delay grows
// past MaxDelay and, once it has passed, the next attempt is let through.
// A trusted attempt (the caller has seen a valid device cookie from an
// earlier successful login to this very account: OWASP "device cookies")
// skips the account-wide and the source-wide delay, which other people's
// failures can cause, so an attacker cannot lock the real user out; it
// still obeys its own pair's.
//
// An attempt that Check admits counts as a failure while it is in flight
// (until Failure or Success, or for a minute at most), so a burst of
// parallel guesses gets no more hashes than the same guesses one by one.
//
// Memory is bounded: each of the three tables holds at most MaxEntries
// entries, the least recently used evicted first, and forgets an entry
// Window after its last failure. Accounts and sources are opaque strings
// (a lower-cased e-mail address, an IP) and personal data: the guard never
// logs, and Stats holds only counts.
//
// It imports only the standard library and internal/clock. It is safe for
// concurrent use and starts no goroutines.
package guard

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"vigil/internal/clock"
)

// Config tunes a Guard. Its zero value works: every zero field takes the
// default in its comment.
type Config struct {
	Clock               clock.Clock   // clock.Real{}
	MaxConcurrentHashes int           // runtime.NumCPU()
	FreePerSource       int           // failures of one (account, source) pair before delays: 5
	FreePerSourceTotal  int           // failures of one source over all accounts before delays: 50
	FreePerAccount      int           // consecutive failures of an account before untrusted attempts are delayed: 20
	MaxConsecutive      int           // consecutive failures of an account after which untrusted attempts wait MaxDelay: 100
	MaxDelay            time.Duration // 15 min
	Window              time.Duration // how long after its last failure an entry is remembered: 24 h
	MaxEntries          int           // entries per table (pairs, sources, accounts): 100,000
}

func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxConcurrentHashes, runtime.NumCPU())
	def(&c.FreePerSource, 5)
	def(&c.FreePerSourceTotal, 50)
	def(&c.FreePerAccount, 20)
	def(&c.MaxConsecutive, 100)
	def(&c.MaxEntries, 100_000)
	if c.MaxDelay <= 0 {
		c.MaxDelay = 15 * time.Minute
	}
	if c.Window <= 0 {
		c.Window = 24 * time.Hour
	}
	return c
}

// baseDelay is the first delay once the free failures are used up.
const baseDelay = time.Second

// inFlightTTL bounds how long an admitted attempt that was never resolved
// by Failure or Success counts as a failure.
const inFlightTTL = time.Minute

// Guard throttles guessing and caps concurrent hashing. Make one with New.
type Guard struct {
	cfg   Config
	slots chan struct{}

	hashes  atomic.Int64
	running atomic.Int64
	waiting atomic.Int64

	mu       sync.Mutex
	pairs    *table[pairKey]
	sources  *table[string]
	accounts *table[string]
	refused  int64
}

type pairKey struct{ account, source string }

// New returns a Guard configured by cfg.
func New(cfg Config) *Guard {
	cfg = cfg.withDefaults()
	return &Guard{
		cfg:      cfg,
		slots:    make(chan struct{}, cfg.MaxConcurrentHashes),
		pairs:    newTable[pairKey](cfg.MaxEntries),
		sources:  newTable[string](cfg.MaxEntries),
		accounts: newTable[string](cfg.MaxEntries),
	}
}

// Check says whether an attempt to log in to account from source may go
// on to hashing now; if not, retryAfter is how long until it may. trusted
// is true only when the request carries a valid device cookie from an
// earlier successful login to this account. Call it before any hashing;
// after it admits an attempt, call exactly one of Failure or Success.
func (g *Guard) Check(account, source string, trusted bool) (retryAfter time.Duration, ok bool) {
	now := g.cfg.Clock.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	if e := g.pairs.get(pairKey{account, source}, now, g.cfg.Window); e != nil {
		retryAfter = max(retryAfter, wait(e.last, g.backoff(e.count(now), g.cfg.FreePerSource), now))
	}
	if !trusted {
		if e := g.sources.get(source, now, g.cfg.Window); e != nil {
			retryAfter = max(retryAfter, wait(e.last, g.backoff(e.count(now), g.cfg.FreePerSourceTotal), now))
		}
		if e := g.accounts.get(account, now, g.cfg.Window); e != nil {
			d := g.backoff(e.count(now), g.cfg.FreePerAccount)
			if e.count(now) >= g.cfg.MaxConsecutive {
				d = g.cfg.MaxDelay
			}
			retryAfter = max(retryAfter, wait(e.last, d, now))
		}
	}
	if retryAfter > 0 {
		g.refused++
		return retryAfter, false
	}
	g.pairs.touch(pairKey{account, source}, now).begin(now)
	g.sources.touch(source, now).begin(now)
	g.accounts.touch(account, now).begin(now)
	return 0, true
}

// Failure records a failed attempt (wrong password, unknown account,
// disabled account: all alike) for account from source.
func (g *Guard) Failure(account, source string) {
	now := g.cfg.Clock.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	g.pairs.touch(pairKey{account, source}, now).fail(now)
	g.sources.touch(source, now).fail(now)
	g.accounts.touch(account, now).fail(now)
}

// Success records a successful login to account from source: the pair's
// and the account's consecutive failures start again from zero. The
// source's failures over all accounts stand, so logging in to one account
// does not buy a sprayer a fresh allowance.
func (g *Guard) Success(account, source string) {
	now := g.cfg.Clock.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expire(now)
	g.pairs.delete(pairKey{account, source})
	g.accounts.delete(account)
	if e := g.sources.get(source, now, g.cfg.Window); e != nil {
		e.end(now)
	}
}

// backoff is the delay after count failures of which free were free.
func (g *Guard) backoff(count, free int) time.Duration {
	if count < free {
		return 0
	}
	if n := count - free; n < 30 {
		return min(baseDelay<<n, g.cfg.MaxDelay)
	}
	return g.cfg.MaxDelay
}

// wait is what is left at now of a delay d since last.
func wait(last time.Time, d time.Duration, now time.Time) time.Duration {
	if d <= 0 {
		return 0
	}
	return max(0, last.Add(d).Sub(now))
}

func (g *Guard) expire(now time.Time) {
	g.pairs.expire(now, g.cfg.Window)
	g.sources.expire(now, g.cfg.Window)
	g.accounts.expire(now, g.cfg.Window)
}

// Hash runs fn, a password hash or verification, holding one of
// MaxConcurrentHashes slots: it waits for a slot or for ctx to end, and
// then returns ctx's error without running fn.
func (g *Guard) Hash(ctx context.Context, fn func()) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("guard: wait for a hash slot: %w", err)
	}
	g.waiting.Add(1)
	select {
	case g.slots <- struct{}{}:
		g.waiting.Add(-1)
	case <-ctx.Done():
		g.waiting.Add(-1)
		return fmt.Errorf("guard: wait for a hash slot: %w", ctx.Err())
	}
	g.running.Add(1)
	defer func() {
		g.running.Add(-1)
		<-g.slots
	}()
	g.hashes.Add(1)
	fn()
	return nil
}

// Hashes returns how many functions Hash has run (started): the argon2
// call counter of security row 20.
func (g *Guard) Hashes() int64 { return g.hashes.Load() }

// Stats are a Guard's counters, for metrics. They hold no account or
// source.
type Stats struct {
	Hashes        int64 // functions Hash has started
	HashesRunning int   // running now
	HashesWaiting int   // waiting for a slot now
	Refused       int64 // attempts Check refused
	Pairs         int   // (account, source) pairs remembered
	Sources       int   // sources remembered
	Accounts      int   // accounts remembered
	Evicted       int64 // entries dropped for MaxEntries before their Window was over
}

// Stats returns the guard's counters now.
func (g *Guard) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Stats{
		Hashes:        g.hashes.Load(),
		HashesRunning: int(g.running.Load()),
		HashesWaiting: int(g.waiting.Load()),
		Refused:       g.refused,
		Pairs:         len(g.pairs.m),
		Sources:       len(g.sources.m),
		Accounts:      len(g.accounts.m),
		Evicted:       g.pairs.evicted + g.sources.evicted + g.accounts.evicted,
	}
}
