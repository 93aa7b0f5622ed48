package guard

import "time"

// entry counts the failures of one pair, source or account.
type entry[K comparable] struct {
	key       K
	fails     int       // failures (consecutive, for pairs and accounts)
	pending   int       // attempts admitted and not yet resolved
	pendingAt time.Time // when the latest of them was admitted
	last      time.Time // last admitted attempt or failure: delays run from here

	prev, next *entry[K] // in the table's order of use
}

// count is the failures plus the attempts in flight, which count as
// failures until resolved or for inFlightTTL.
func (e *entry[K]) count(now time.Time) int {
	if e.pending > 0 && now.Sub(e.pendingAt) < inFlightTTL {
		return e.fails + e.pending
	}
	return e.fails
}

// begin records an admitted attempt.
func (e *entry[K]) begin(now time.Time) {
	if now.Sub(e.pendingAt) >= inFlightTTL {
		e.pending = 0
	}
	e.pending++
	e.pendingAt = now
}

// end resolves one admitted attempt, if any is in flight.
func (e *entry[K]) end(now time.Time) {
	if e.pending > 0 && now.Sub(e.pendingAt) < inFlightTTL {
		e.pending--
		return
	}
	e.pending = 0
}

// fail records a failure, resolving the attempt it ends.
func (e *entry[K]) fail(now time.Time) {
	e.end(now)
	e.fails++
}

// table is a map of entries with a bound on its size: a doubly linked
// list in order of use, least recently used at the head, evicted first.
type table[K comparable] struct {
	m          map[K]*entry[K]
	head, tail *entry[K]
	max        int
	evicted    int64
}

func newTable[K comparable](max int) *table[K] {
	return &table[K]{m: make(map[K]*entry[K]), max: max}
}

// get returns k's entry, or nil if there is none or it is older than
// window (then it is dropped).
func (t *table[K]) get(k K, now time.Time, window time.Duration) *entry[K] {
	e := t.m[k]
	if e != nil && now.Sub(e.last) >= window {
		t.remove(e)
		return nil
	}
	return e
}

// touch returns k's entry, made if need be, marked used at now; it evicts
// the least recently used entries past the bound.
func (t *table[K]) touch(k K, now time.Time) *entry[K] {
	e := t.m[k]
	if e == nil {
		e = &entry[K]{key: k}
		t.m[k] = e
	} else {
		t.unlink(e)
	}
	e.last = now
	t.pushBack(e)
	for len(t.m) > t.max && t.head != e {
		t.remove(t.head)
		t.evicted++
	}
	return e
}

func (t *table[K]) delete(k K) {
	if e := t.m[k]; e != nil {
		t.remove(e)
	}
}

// expire drops the entries last used window or more before now. The list
// is in order of use, so it stops at the first recent one.
func (t *table[K]) expire(now time.Time, window time.Duration) {
	for t.head != nil && now.Sub(t.head.last) >= window {
		t.remove(t.head)
	}
}

func (t *table[K]) remove(e *entry[K]) {
	t.unlink(e)
	delete(t.m, e.key)
}

func (t *table[K]) unlink(e *entry[K]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else if t.head == e {
		t.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else if t.tail == e {
		t.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (t *table[K]) pushBack(e *entry[K]) {
	e.prev = t.tail
	if t.tail != nil {
		t.tail.next = e
	} else {
		t.head = e
	}
	t.tail = e
}
