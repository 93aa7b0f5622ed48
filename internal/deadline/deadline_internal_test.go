package deadline

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// check verifies the heap property and that heap, slots, free list and
// index agree.
func (s *Scheduler[K]) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.heap) != len(s.index) {
		t.Fatalf("len(heap)=%d len(index)=%d, want equal", len(s.heap), len(s.index))
	}
	used := make([]bool, len(s.slots))
	for i, e := range s.heap {
		if i > 0 && s.heap[(i-1)/4].at > e.at {
			t.Fatalf("heap[%d].at=%d is earlier than its parent's %d", i, e.at, s.heap[(i-1)/4].at)
		}
		if used[e.slot] {
			t.Fatalf("slot %d used twice", e.slot)
		}
		used[e.slot] = true
		sl := s.slots[e.slot]
		if int(sl.pos) != i {
			t.Fatalf("slots[heap[%d].slot].pos = %d, want %d", i, sl.pos, i)
		}
		if got, ok := s.index[sl.key]; !ok || got != e.slot {
			t.Fatalf("index[%v] = %d, %v; want %d", sl.key, got, ok, e.slot)
		}
	}
	free := 0
	for f := s.free; f != none; f = s.slots[f].pos {
		if used[f] {
			t.Fatalf("slot %d both used and free", f)
		}
		used[f] = true
		var zero K
		if s.slots[f].key != zero {
			t.Fatalf("free slot %d keeps key %v", f, s.slots[f].key)
		}
		free++
	}
	if len(s.heap)+free != len(s.slots) {
		t.Fatalf("%d used + %d free slots, want %d", len(s.heap), free, len(s.slots))
	}
}

// model is the reference: a slice kept sorted by deadline, then key.
type model struct{ items []Item[int] }

func compareItems(a, b Item[int]) int {
	return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Key, b.Key))
}

func (m *model) cancel(key int) bool {
	i := slices.IndexFunc(m.items, func(it Item[int]) bool { return it.Key == key })
	if i < 0 {
		return false
	}
	m.items = slices.Delete(m.items, i, i+1)
	return true
}

func (m *model) set(key int, at time.Time) {
	m.cancel(key)
	it := Item[int]{key, at}
	i, _ := slices.BinarySearchFunc(m.items, it, compareItems)
	m.items = slices.Insert(m.items, i, it)
}

// due removes and returns the items due by now.
func (m *model) due(now time.Time) []Item[int] {
	i := 0
	for i < len(m.items) && !m.items[i].At.After(now) {
		i++
	}
	d := slices.Clone(m.items[:i])
	m.items = m.items[i:]
	return d
}

// TestModel drives a Scheduler and the sorted-slice model with the same
// random operations in virtual time and compares what fires, Len and Next.
func TestModel(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testModel(t, seed) })
		})
	}
}

func testModel(t *testing.T, seed uint64) {
	const keys, ops = 1500, 3000
	r := rand.New(rand.NewPCG(seed, 99))
	s := New[int](Config{MaxBatch: 1 + r.IntN(20)})
	var m model
	var got []Item[int]
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	go s.Run(ctx, func(due []Item[int]) {
		if !slices.IsSortedFunc(due, func(a, b Item[int]) int { return a.At.Compare(b.At) }) {
			t.Errorf("batch not in deadline order: %v", due)
		}
		if len(due) > s.maxBatch {
			t.Errorf("batch of %d, want at most %d", len(due), s.maxBatch)
		}
		got = append(got, due...)
	})
	t0 := time.Now()
	// Deadlines on a coarse grid so that many are equal.
	randAt := func() time.Time {
		return time.Now().Add(time.Duration(r.IntN(120)-10) * 500 * time.Millisecond)
	}
	for op := range ops {
		switch k := r.IntN(keys); r.IntN(10) {
		case 0, 1, 2, 3:
			at := randAt()
			s.Set(k, at)
			m.set(k, at.Truncate(0).UTC())
		case 4, 5:
			if g, w := s.Cancel(k), m.cancel(k); g != w {
				t.Fatalf("op %d: Cancel(%d) = %v, model says %v", op, k, g, w)
			}
		case 6:
			var items []Item[int]
			for range r.IntN(200) {
				items = append(items, Item[int]{r.IntN(keys), randAt()})
			}
			s.Load(items)
			for _, it := range items {
				m.set(it.Key, it.At.Truncate(0).UTC())
			}
		case 7:
			if r.IntN(50) == 0 { // most sessions end: many free slots
				for k := range keys {
					if r.IntN(10) != 0 && s.Cancel(k) != m.cancel(k) {
						t.Fatalf("op %d: Cancel(%d) disagrees with the model", op, k)
					}
				}
			}
		default:
			time.Sleep(time.Duration(r.IntN(8)) * 500 * time.Millisecond)
		}
		synctest.Wait()
		want := m.due(time.Now())
		// Equal deadlines come in any order: compare sorted by key too.
		slices.SortStableFunc(got, compareItems)
		if diff := gocmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("op %d at %v: fired (-model +scheduler):\n%s", op, time.Since(t0), diff)
		}
		got = got[:0]
		if g, w := s.Len(), len(m.items); g != w {
			t.Fatalf("op %d: Len() = %d, model has %d", op, g, w)
		}
		next, ok := s.Next()
		if ok != (len(m.items) > 0) || ok && !next.Equal(m.items[0].At) {
			t.Fatalf("op %d: Next() = %v, %v; model's first is %v", op, next, ok, m.items)
		}
		s.check(t)
	}
}

// TestLoadPaths covers Load into an empty Scheduler (with distinct keys,
// indexed without look-ups, and with repeated ones), a small and a large
// one (heapify versus one sift per item) against the model.
func TestLoadPaths(t *testing.T) {
	tests := []struct {
		before, load int
		distinct     bool
	}{
		{0, 1000, false},
		{0, 1000, true},
		{0, 1, true},
		{10, 1000, false},
		{1000, 1000, false},
		{10000, 5, false}, // few into many: one Set each
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d then %d distinct %v", tt.before, tt.load, tt.distinct), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(tt.before), uint64(tt.load)))
			t0 := time.Date(2026, 11, 29, 14, 35, 0, 0, time.UTC)
			at := func() time.Time { return t0.Add(time.Duration(r.IntN(1e6)) * time.Millisecond) }
			s := New[int](Config{})
			want := map[int]time.Time{} // the last deadline of each key
			for range tt.before {
				k, a := r.IntN(2*tt.before), at()
				s.Set(k, a)
				want[k] = a
			}
			var items []Item[int]
			for i := range tt.load {
				k := r.IntN(2 * (tt.before + tt.load))
				if tt.distinct {
					k = 2*tt.load - 1 - 2*i
				}
				items = append(items, Item[int]{k, at()})
			}
			if !tt.distinct && tt.before == 0 && len(items) > 1 {
				items[len(items)-1].Key = items[0].Key // at least one repeat
			}
			s.Load(items)
			for _, it := range items {
				want[it.Key] = it.At
			}
			var m model
			for k, a := range want {
				m.items = append(m.items, Item[int]{k, a})
			}
			slices.SortFunc(m.items, compareItems)
			s.check(t)
			var got []Item[int]
			for len(s.heap) > 0 {
				got = append(got, s.popDue(nil, math.MaxInt64)...)
			}
			slices.SortStableFunc(got, compareItems)
			if diff := gocmp.Diff(m.items, got); diff != "" {
				t.Errorf("popped (-model +scheduler):\n%s", diff)
			}
		})
	}
}

func TestShrinkAndReuse(t *testing.T) {
	s := New[int](Config{})
	t0 := time.Now()
	for i := range 100_000 {
		s.Set(i, t0.Add(time.Duration(i%977)))
	}
	for i := range 99_000 {
		s.Cancel(i)
		if i%10_000 == 0 {
			s.check(t)
		}
	}
	s.check(t)
	if c := cap(s.heap); c > 4096 {
		t.Errorf("cap(heap) = %d with %d pending, want it shrunk", c, len(s.heap))
	}
	// New keys take the free slots.
	for i := range 99_000 {
		s.Set(-1-i, t0.Add(time.Duration(i%1009)))
	}
	s.check(t)
	if n := len(s.slots); n != 100_000 {
		t.Errorf("len(slots) = %d after refilling, want 100000 (free slots reused)", n)
	}
	var got []Item[int]
	for len(s.heap) > 0 {
		got = append(got, s.popDue(nil, math.MaxInt64)...)
	}
	if len(got) != 100_000 || !slices.IsSortedFunc(got, func(a, b Item[int]) int { return a.At.Compare(b.At) }) {
		t.Errorf("popped %d items, want 100000 in deadline order", len(got))
	}
	for _, it := range got {
		if 0 <= it.Key && it.Key < 99_000 {
			t.Fatalf("cancelled key %d popped", it.Key)
		}
	}
	s.check(t)
}

func TestUnixNanoClamps(t *testing.T) {
	tests := []struct {
		in   time.Time
		want int64
	}{
		{time.Time{}, -1 << 63},
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 1<<63 - 1},
		{time.Unix(0, 1), 1},
		{time.Unix(-5, 0), -5e9},
	}
	for _, tt := range tests {
		if got := unixNano(tt.in); got != tt.want {
			t.Errorf("unixNano(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
