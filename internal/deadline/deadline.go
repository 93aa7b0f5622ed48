// Package deadline fires many keyed deadlines, each once and on time, from
// one goroutine owned by the caller: "worker s3x… must check in by 14:35 or
// an alert is raised", for up to millions of pending keys.
//
// A Scheduler holds at most one deadline per key. Set adds or moves it,
// Cancel removes it, Load rebuilds many at once after a restart (one O(n)
// heapify instead of n Sets), and Run sleeps on a single time.Timer until the
// earliest deadline, then hands every due item to a fire callback, in
// deadline order and in batches of at most Config.MaxBatch, removing them
// before the call. A deadline already in the past fires as soon as Run
// runs. The order of items with equal deadlines is unspecified.
//
// Layout: a 4-ary min-heap of 16-byte, pointer-free entries {unix nanos,
// slot}; a slot array {key, heap position} with a free list; a map from key
// to slot. Moving an entry in the heap updates its slot's position without
// hashing the key, firing or cancelling costs one map delete, and no entry
// is a separate allocation: about 120 bytes per pending deadline with
// 17-byte string keys, the keys' own bytes included (BenchmarkMemory1M).
// Fired and cancelled keys are released at once and the heap shrinks, but
// the slots and the map keep their peak size (about 80 bytes per peak
// deadline) until the process restarts and Loads what is pending: a
// rebuild to shrink them would pause Run.
//
// Concurrency: Set, Cancel, Load, Len and Next are safe from any goroutine,
// also while Run runs; a Set earlier than the deadline Run sleeps on wakes
// it. At most one Run may run at a time. fire is called on Run's goroutine
// with no lock held, so it may call Set, Cancel, Len or Next (re-arming the
// next check-in, say) without deadlocking; a slow fire delays every later
// deadline, so it should hand work on rather than do it. Run owns no
// goroutine beyond its caller's.
//
// Time: deadlines are wall-clock instants ("14:35"), compared with the
// clock's Now when Run wakes (Config.Clock; the real clock by default).
// With the real clock, Run sleeps for the gap on a time.Timer, which runs on
// the monotonic clock, so a step of the system clock is noticed at the next
// wake-up, and tests run in virtual time under testing/synctest (create the
// Scheduler and start Run inside the bubble). With a clock.Manual, Run
// sleeps until the test moves that clock past the earliest deadline.
//
// The package imports only the standard library and internal/clock (a
// leaf); it must never import other Vigil packages (the store, the bus,
// alerting): the safety engine calls it, not the other way round.
package deadline

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"vigil/internal/clock"
)

// DefaultMaxBatch is the largest batch handed to fire when Config.MaxBatch
// is zero.
const DefaultMaxBatch = 4096

// Config tunes a Scheduler. The zero value works.
type Config struct {
	// MaxBatch caps the number of items passed to one fire call, so that
	// one huge batch of due deadlines does not hold Set and Cancel off for
	// long and ctx is checked between batches. Zero or less means
	// DefaultMaxBatch.
	MaxBatch int
	// Clock tells Run the time and wakes it; nil means the real clock.
	Clock clock.Timers
}

// Item is a key and its deadline.
type Item[K comparable] struct {
	Key K
	// At is the deadline. A Scheduler keeps it as Unix nanoseconds: the
	// At it hands back has no monotonic reading and is in UTC, so compare
	// with Equal. Instants outside the years 1678–2262 are clamped to them.
	At time.Time
}

// Scheduler holds keyed deadlines and fires them from Run. Create one with
// New; it must not be copied.
type Scheduler[K comparable] struct {
	maxBatch int
	clk      clock.Timers

	mu    sync.Mutex
	heap  []entry       // 4-ary min-heap on at
	slots []slot[K]     // heap[i].slot indexes it
	free  int32         // first free slot, chained through pos; none if none
	index map[K]int32   // key → slot
	armed int64         // what Run sleeps until; see the constants below
	wake  chan struct{} // made by Run; a token means "look again"
	runs  bool          // a Run is running
}

type entry struct {
	at   int64 // Unix nanoseconds
	slot int32
}

type slot[K comparable] struct {
	key K
	pos int32 // position of the key's entry in heap, or the next free slot
}

// none is the end of the free list.
const none = -1

// Values of Scheduler.armed besides a deadline Run sleeps until.
const (
	awake = math.MinInt64 // Run is not sleeping (or not running): no wake-up needed
	idle  = math.MaxInt64 // Run sleeps with nothing pending
)

// maxLen is the most deadlines a Scheduler holds (positions are int32).
const maxLen = math.MaxInt32

// New returns an empty Scheduler.
func New[K comparable](cfg Config) *Scheduler[K] {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Scheduler[K]{
		maxBatch: cfg.MaxBatch,
		clk:      cfg.Clock,
		index:    make(map[K]int32),
		free:     none,
		armed:    awake,
	}
}

// Set gives key the deadline at, adding the key or moving its deadline
// earlier or later. A deadline at or before now fires as soon as Run gets
// to it; the zero time.Time is such a deadline.
func (s *Scheduler[K]) Set(key K, at time.Time) {
	ns := unixNano(at)
	s.mu.Lock()
	s.set(key, ns)
	s.wakeIfBefore(ns)
	s.mu.Unlock()
}

// Cancel removes key's deadline and reports whether it had one. A deadline
// already handed to fire cannot be cancelled.
func (s *Scheduler[K]) Cancel(key K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl, ok := s.index[key]
	if !ok {
		return false
	}
	s.remove(int(s.slots[sl].pos))
	s.shrink()
	return true
}

// Len returns the number of pending deadlines.
func (s *Scheduler[K]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.heap)
}

// Next returns the earliest pending deadline, or false if there is none.
func (s *Scheduler[K]) Next() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.heap) == 0 {
		return time.Time{}, false
	}
	return fromUnixNano(s.heap[0].at), true
}

// Load adds items as if by Set in order (a later item for the same key
// wins, and a key already pending is moved), for rebuilding the schedule
// after a restart. It costs O(len(items)+Len()) with one heapify instead of
// a sift per item; adding a few items to a large Scheduler falls back to
// Set's cost. Into an empty Scheduler, items with distinct keys (a
// restart's case) are indexed without a look-up each; repeated keys are
// noticed and loaded the general way. Items already due fire as soon as
// Run gets to them.
func (s *Scheduler[K]) Load(items []Item[K]) {
	if len(items) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n0 := len(s.heap)
	if n0+len(items) > maxLen {
		panic("deadline: more than MaxInt32 pending deadlines")
	}
	earliest := int64(idle)
	if n0 > 0 && len(items)*heapDepth(n0+len(items)) < n0 {
		// Few items into a big heap: sifting each is cheaper than a
		// heapify of everything.
		for _, it := range items {
			ns := unixNano(it.At)
			s.set(it.Key, ns)
			earliest = min(earliest, ns)
		}
		s.wakeIfBefore(earliest)
		return
	}
	if n0 == 0 {
		// Size the index once rather than growing it by rehashing.
		s.index = make(map[K]int32, len(items))
		s.slots, s.free = s.slots[:0], none
		if s.loadDistinct(items) {
			s.heapify()
			return
		}
	}
	s.heap = slices.Grow(s.heap, len(items))
	s.slots = slices.Grow(s.slots, len(items))
	for _, it := range items {
		ns := unixNano(it.At)
		if sl, ok := s.index[it.Key]; ok {
			s.heap[s.slots[sl].pos].at = ns
			continue
		}
		s.push(it.Key, ns)
	}
	s.heapify()
}

// loadDistinct is Load into an empty Scheduler, assuming distinct keys (a
// start-up's usual case): it indexes each key without first looking it
// up, which at millions of keys is a cache miss per item saved. If the
// keys were not distinct the index came out shorter than items: it then
// empties the Scheduler again and reports false, for Load's general path.
// s.mu must be held.
func (s *Scheduler[K]) loadDistinct(items []Item[K]) bool {
	s.heap = slices.Grow(s.heap[:0], len(items))
	s.slots = slices.Grow(s.slots[:0], len(items))
	for i, it := range items {
		sl := int32(i)
		s.index[it.Key] = sl
		s.slots = append(s.slots, slot[K]{key: it.Key, pos: sl})
		s.heap = append(s.heap, entry{at: unixNano(it.At), slot: sl})
	}
	if len(s.index) == len(items) {
		return true
	}
	clear(s.index)
	clear(s.slots) // drop the keys for the collector
	s.heap, s.slots = s.heap[:0], s.slots[:0]
	return false
}

// heapify restores the heap order of s.heap in O(n) and wakes Run for
// its earliest deadline. s.mu must be held.
func (s *Scheduler[K]) heapify() {
	for i := (len(s.heap) - 2) / 4; i >= 0; i-- {
		s.down(i)
	}
	s.wakeIfBefore(s.heap[0].at)
}

// Run fires deadlines until ctx is done, then returns. It sleeps on one
// timer until the earliest deadline and calls fire with every item due by
// the clock's now, earliest first, at most Config.MaxBatch per call, after
// removing them from the Scheduler; it calls fire again at once while more
// are due, checking ctx between calls. Items whose deadlines are already
// past fire first thing.
//
// fire runs on Run's goroutine with no lock held: it may call Set, Cancel,
// Len and Next. The slice is reused after fire returns; fire must not keep
// it (copy what it needs). Only one Run may run at a time; a second panics.
func (s *Scheduler[K]) Run(ctx context.Context, fire func(due []Item[K])) {
	s.mu.Lock()
	if s.runs {
		s.mu.Unlock()
		panic("deadline: Run called while another Run runs")
	}
	s.runs = true
	// Made here, not in New, so that under testing/synctest the channel
	// belongs to the bubble Run blocks in.
	wake := make(chan struct{}, 1)
	s.wake = wake
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.runs, s.armed, s.wake = false, awake, nil
		s.mu.Unlock()
	}()

	timer := s.clk.NewTimer()
	defer timer.Stop()
	var due []Item[K]
	for ctx.Err() == nil {
		s.mu.Lock()
		now := s.clk.Now()
		due = s.popDue(due[:0], unixNano(now))
		var next int64
		pending := len(s.heap) > 0
		switch {
		case len(due) > 0:
			s.armed = awake
		case pending:
			next = s.heap[0].at
			s.armed = next
		default:
			s.armed = idle
		}
		s.shrink()
		s.mu.Unlock()

		if len(due) > 0 {
			fire(due)
			clear(due) // let fired keys be collected
			continue
		}
		var tick <-chan time.Time
		if pending {
			timer.ResetAt(fromUnixNano(next))
			tick = timer.C()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-wake:
			timer.Stop()
		}
	}
}

// popDue appends up to maxBatch items due by now to due, removing them.
func (s *Scheduler[K]) popDue(due []Item[K], now int64) []Item[K] {
	for len(due) < s.maxBatch && len(s.heap) > 0 && s.heap[0].at <= now {
		e := s.heap[0]
		due = append(due, Item[K]{Key: s.slots[e.slot].key, At: fromUnixNano(e.at)})
		s.remove(0)
	}
	return due
}

// wakeIfBefore wakes a sleeping Run if ns is earlier than what it sleeps
// until. s.mu must be held.
func (s *Scheduler[K]) wakeIfBefore(ns int64) {
	if ns >= s.armed && s.armed != idle {
		return
	}
	s.armed = ns // further earlier Sets need no second token
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// shrink gives back the heap's spare room once the pending deadlines fall
// to a quarter of its capacity: a copy of 16-byte, pointer-free entries.
// The slots and the index keep their peak size (Go maps never shrink;
// renumbering the slots to shrink them needs a rebuild of the index under
// the lock: tried, it paused Run 50–250 ms at 250k pending on the
// project's machine). s.mu must be held.
func (s *Scheduler[K]) shrink() {
	const minCap = 1024
	if n := len(s.heap); cap(s.heap) > minCap && n < cap(s.heap)/4 {
		s.heap = append(make([]entry, 0, max(n+n/4, minCap)), s.heap...)
	}
}

// unixNano is t.UnixNano clamped to int64 instead of undefined outside the
// years 1678–2262.
func unixNano(t time.Time) int64 {
	const limit = math.MaxInt64 / int64(time.Second) // in seconds
	switch sec := t.Unix(); {
	case sec >= limit:
		return math.MaxInt64
	case sec <= -limit:
		return math.MinInt64
	}
	return t.UnixNano()
}

func fromUnixNano(ns int64) time.Time { return time.Unix(0, ns).UTC() }
