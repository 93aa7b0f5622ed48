package deadline_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/deadline"
)

// fired is one item handed to fire, with times as offsets from the start of
// the timeline.
type fired struct {
	Key   string
	At    time.Duration // the item's deadline
	Fired time.Duration // when fire was called
}

// timeline is a running scenario: a Scheduler, its Run and what it fired.
type timeline struct {
	t  *testing.T
	t0 time.Time
	s  *deadline.Scheduler[string]

	mu      sync.Mutex
	batches [][]fired
}

func (tl *timeline) since(at time.Time) time.Duration { return at.Sub(tl.t0) }

func (tl *timeline) fired() []fired {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var all []fired
	for _, b := range tl.batches {
		all = append(all, b...)
	}
	return all
}

// step is something done at a point of a timeline.
type step struct {
	at time.Duration
	do func(tl *timeline)
}

func set(at time.Duration, key string, due time.Duration) step {
	return step{at, func(tl *timeline) { tl.s.Set(key, tl.t0.Add(due)) }}
}

func cancel(at time.Duration, key string, want bool) step {
	return step{at, func(tl *timeline) {
		if got := tl.s.Cancel(key); got != want {
			tl.t.Errorf("at %v: Cancel(%q) = %v, want %v", at, key, got, want)
		}
	}}
}

func load(at time.Duration, items ...fired) step {
	return step{at, func(tl *timeline) {
		var its []deadline.Item[string]
		for _, it := range items {
			its = append(its, deadline.Item[string]{Key: it.Key, At: tl.t0.Add(it.At)})
		}
		tl.s.Load(its)
	}}
}

// runAt marks when Run starts; without it Run starts at 0.
type runAt time.Duration

// playTimeline plays steps in virtual time (they must be in time order) and
// returns the batches fired until an hour after the last step. onFire, if
// not nil, is called from fire for each item, after it is recorded.
func playTimeline(t *testing.T, cfg deadline.Config, start runAt, steps []step, onFire func(tl *timeline, it deadline.Item[string])) *timeline {
	t.Helper()
	tl := &timeline{t: t, t0: time.Now(), s: deadline.New[string](cfg)}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	run := func() {
		go func() {
			defer close(done)
			tl.s.Run(ctx, func(due []deadline.Item[string]) {
				now := tl.since(time.Now())
				b := make([]fired, 0, len(due))
				for _, it := range due {
					b = append(b, fired{it.Key, tl.since(it.At), now})
				}
				tl.mu.Lock()
				tl.batches = append(tl.batches, b)
				tl.mu.Unlock()
				if onFire != nil {
					for _, it := range due {
						onFire(tl, it)
					}
				}
			})
		}()
	}
	started := false
	sleepUntil := func(at time.Duration) {
		if d := at - tl.since(time.Now()); d > 0 {
			time.Sleep(d)
		}
		synctest.Wait()
	}
	for _, st := range steps {
		if !started && time.Duration(start) <= st.at {
			sleepUntil(time.Duration(start))
			run()
			started = true
		}
		sleepUntil(st.at)
		st.do(tl)
		synctest.Wait()
	}
	if !started {
		sleepUntil(time.Duration(start))
		run()
	}
	time.Sleep(time.Hour)
	synctest.Wait()
	stop()
	<-done
	return tl
}

func TestTimeline(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name   string
		cfg    deadline.Config
		run    runAt
		steps  []step
		onFire func(tl *timeline, it deadline.Item[string])
		want   []fired
	}{
		{
			name:  "fires at its deadline",
			steps: []step{set(0, "a", 10*s)},
			want:  []fired{{"a", 10 * s, 10 * s}},
		},
		{
			name:  "keys fire in deadline order",
			steps: []step{set(0, "a", 30*s), set(0, "b", 10*s), set(0, "c", 20*s)},
			want:  []fired{{"b", 10 * s, 10 * s}, {"c", 20 * s, 20 * s}, {"a", 30 * s, 30 * s}},
		},
		{
			name:  "set moves a deadline earlier",
			steps: []step{set(0, "a", 30*s), set(5*s, "a", 10*s)},
			want:  []fired{{"a", 10 * s, 10 * s}},
		},
		{
			name:  "set moves a deadline later",
			steps: []step{set(0, "a", 10*s), set(5*s, "a", 30*s)},
			want:  []fired{{"a", 30 * s, 30 * s}},
		},
		{
			name:  "an earlier set wakes Run sleeping on a later deadline",
			steps: []step{set(0, "b", 60*s), set(5*s, "a", 10*s)},
			want:  []fired{{"a", 10 * s, 10 * s}, {"b", 60 * s, 60 * s}},
		},
		{
			name:  "a set while Run sleeps with nothing pending wakes it",
			steps: []step{set(20*s, "a", 25*s)},
			want:  []fired{{"a", 25 * s, 25 * s}},
		},
		{
			name:  "cancel prevents fire",
			steps: []step{set(0, "a", 10*s), cancel(5*s, "a", true), cancel(6*s, "a", false)},
			want:  nil,
		},
		{
			name:  "cancel of the earliest leaves the next on time",
			steps: []step{set(0, "a", 10*s), set(0, "b", 20*s), cancel(5*s, "a", true)},
			want:  []fired{{"b", 20 * s, 20 * s}},
		},
		{
			name:  "cancel after firing reports false",
			steps: []step{set(0, "a", 10*s), cancel(15*s, "a", false)},
			want:  []fired{{"a", 10 * s, 10 * s}},
		},
		{
			name:  "a past deadline fires at once",
			steps: []step{set(5*s, "a", -time.Hour), set(6*s, "b", 6*s)},
			want:  []fired{{"a", -time.Hour, 5 * s}, {"b", 6 * s, 6 * s}},
		},
		{
			name:  "the zero time is due now",
			steps: []step{{5 * s, func(tl *timeline) { tl.s.Set("a", time.Time{}) }}},
			// Clamped to 1677, further back than a Duration reaches.
			want: []fired{{"a", math.MinInt64, 5 * s}},
		},
		{
			name:  "deadlines passed before Run starts fire when it starts",
			run:   runAt(30 * s),
			steps: []step{set(0, "c", 40*s), set(0, "b", 20*s), set(0, "a", 10*s)},
			want:  []fired{{"a", 10 * s, 30 * s}, {"b", 20 * s, 30 * s}, {"c", 40 * s, 40 * s}},
		},
		{
			name: "load then run",
			run:  runAt(15 * s),
			steps: []step{
				set(0, "kept", 50*s),
				load(1*s,
					fired{Key: "c", At: 30 * s},
					fired{Key: "a", At: 10 * s},
					fired{Key: "dup", At: 5 * s},
					fired{Key: "past", At: -time.Minute},
					fired{Key: "dup", At: 20 * s}, // the later item wins
					fired{Key: "b", At: 15 * s},
				),
			},
			want: []fired{
				{"past", -time.Minute, 15 * s},
				{"a", 10 * s, 15 * s},
				{"b", 15 * s, 15 * s},
				{"dup", 20 * s, 20 * s},
				{"c", 30 * s, 30 * s},
				{"kept", 50 * s, 50 * s},
			},
		},
		{
			name:  "load moves pending keys and wakes Run",
			steps: []step{set(0, "a", 60*s), set(0, "b", 70*s), load(5*s, fired{Key: "b", At: 10 * s})},
			want:  []fired{{"b", 10 * s, 10 * s}, {"a", 60 * s, 60 * s}},
		},
		{
			name:  "fire re-arms the next check-in",
			steps: []step{set(0, "a", 10*s)},
			onFire: func(tl *timeline, it deadline.Item[string]) {
				if tl.since(it.At) < 30*s {
					tl.s.Set(it.Key, it.At.Add(10*s))
				}
			},
			want: []fired{{"a", 10 * s, 10 * s}, {"a", 20 * s, 20 * s}, {"a", 30 * s, 30 * s}},
		},
		{
			name:  "fire sets a deadline already due",
			steps: []step{set(0, "a", 10*s)},
			onFire: func(tl *timeline, it deadline.Item[string]) {
				if it.Key == "a" {
					tl.s.Set("b", it.At.Add(-s))
				}
			},
			want: []fired{{"a", 10 * s, 10 * s}, {"b", 9 * s, 10 * s}},
		},
		{
			name:  "fire cancels a later key",
			steps: []step{set(0, "a", 10*s), set(0, "b", 15*s)},
			onFire: func(tl *timeline, it deadline.Item[string]) {
				if it.Key == "a" && !tl.s.Cancel("b") {
					tl.t.Error("Cancel(b) from fire = false, want true")
				}
			},
			want: []fired{{"a", 10 * s, 10 * s}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tl := playTimeline(t, tt.cfg, tt.run, tt.steps, tt.onFire)
				if diff := cmp.Diff(tt.want, tl.fired()); diff != "" {
					t.Errorf("fired (-want +got):\n%s", diff)
				}
				if n := tl.s.Len(); n != 0 {
					t.Errorf("Len() after the timeline = %d, want 0", n)
				}
			})
		})
	}
}

func TestEqualDeadlines(t *testing.T) {
	const n = 10_000
	tests := []struct {
		name      string
		cfg       deadline.Config
		wantSizes []int
	}{
		{"default batch", deadline.Config{}, []int{4096, 4096, 1808}},
		{"batch of 3000", deadline.Config{MaxBatch: 3000}, []int{3000, 3000, 3000, 1000}},
		{"batch larger than n", deadline.Config{MaxBatch: 1 << 20}, []int{n}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var items []fired
				var want []fired
				for i := range n {
					key := fmt.Sprintf("k%05d", i)
					items = append(items, fired{Key: key, At: 10 * time.Second})
					want = append(want, fired{key, 10 * time.Second, 10 * time.Second})
				}
				tl := playTimeline(t, tt.cfg, 0, []step{load(0, items...)}, nil)
				var sizes []int
				for _, b := range tl.batches {
					sizes = append(sizes, len(b))
				}
				if diff := cmp.Diff(tt.wantSizes, sizes); diff != "" {
					t.Errorf("batch sizes (-want +got):\n%s", diff)
				}
				got := tl.fired()
				slices.SortFunc(got, func(a, b fired) int { return strings.Compare(a.Key, b.Key) })
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("fired (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestBatchInDeadlineOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 1000 deadlines all past when Run starts: they come in batches of
		// 64, each sorted, each later than the one before.
		var steps []step
		r := rand.New(rand.NewPCG(1, 2))
		for i := range 1000 {
			steps = append(steps, set(0, fmt.Sprint(i), time.Duration(r.IntN(3600))*time.Second))
		}
		tl := playTimeline(t, deadline.Config{MaxBatch: 64}, runAt(2*time.Hour), steps, nil)
		got := tl.fired()
		if len(got) != 1000 {
			t.Fatalf("fired %d items, want 1000", len(got))
		}
		if !slices.IsSortedFunc(got, func(a, b fired) int { return int(a.At - b.At) }) {
			t.Error("items did not fire in deadline order")
		}
		for _, b := range tl.batches {
			if len(b) > 64 {
				t.Fatalf("batch of %d items, want at most 64", len(b))
			}
		}
	})
}

func TestNextAndLen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := deadline.New[int](deadline.Config{})
		t0 := time.Now()
		check := func(wantLen int, wantNext time.Duration, wantOK bool) {
			t.Helper()
			if got := s.Len(); got != wantLen {
				t.Errorf("Len() = %d, want %d", got, wantLen)
			}
			next, ok := s.Next()
			if ok != wantOK || (ok && !next.Equal(t0.Add(wantNext))) {
				t.Errorf("Next() = %v, %v; want %v, %v", next.Sub(t0), ok, wantNext, wantOK)
			}
		}
		check(0, 0, false)
		s.Set(1, t0.Add(time.Minute))
		s.Set(2, t0.Add(time.Second))
		check(2, time.Second, true)
		s.Set(2, t0.Add(time.Hour))
		check(2, time.Minute, true)
		if !s.Cancel(1) {
			t.Error("Cancel(1) = false, want true")
		}
		check(1, time.Hour, true)
		if !s.Cancel(2) {
			t.Error("Cancel(2) = false, want true")
		}
		check(0, 0, false)
	})
}

func TestRunReturnsWhenContextDone(t *testing.T) {
	tests := []struct {
		name    string
		pending int
	}{
		{"nothing pending", 0},
		{"deadline pending", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := deadline.New[string](deadline.Config{})
				for i := range tt.pending {
					s.Set(fmt.Sprint(i), time.Now().Add(time.Hour))
				}
				ctx, stop := context.WithTimeout(t.Context(), 5*time.Second)
				defer stop()
				t0 := time.Now()
				s.Run(ctx, func([]deadline.Item[string]) { t.Error("fire called") })
				if got := time.Since(t0); got != 5*time.Second {
					t.Errorf("Run returned after %v, want 5s", got)
				}
				if got := s.Len(); got != tt.pending {
					t.Errorf("Len() = %d, want %d", got, tt.pending)
				}
			})
		})
	}
}

func TestRunStopsBetweenBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := deadline.New[int](deadline.Config{MaxBatch: 10})
		for i := range 100 {
			s.Set(i, time.Now())
		}
		ctx, stop := context.WithCancel(t.Context())
		calls := 0
		s.Run(ctx, func(due []deadline.Item[int]) {
			calls++
			stop()
		})
		if calls != 1 || s.Len() != 90 {
			t.Errorf("after cancelling in the first fire: %d calls, Len() = %d; want 1, 90", calls, s.Len())
		}
		// A second Run carries on where the first stopped.
		ctx, stop = context.WithTimeout(t.Context(), time.Second)
		defer stop()
		n := 0
		s.Run(ctx, func(due []deadline.Item[int]) { n += len(due) })
		if n != 90 || s.Len() != 0 {
			t.Errorf("second Run fired %d, Len() = %d; want 90, 0", n, s.Len())
		}
	})
}

func TestRunTwicePanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := deadline.New[int](deadline.Config{})
		ctx, stop := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Run(ctx, func([]deadline.Item[int]) {})
		}()
		synctest.Wait()
		func() {
			defer func() {
				if recover() == nil {
					t.Error("a second concurrent Run did not panic")
				}
			}()
			s.Run(ctx, func([]deadline.Item[int]) {})
		}()
		stop()
		<-done
	})
}

// TestConcurrentSetCancel runs writers against Run (meant for -race) and
// checks that each key's last Set fired and nothing fired after a Cancel.
func TestConcurrentSetCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const writers, keys, ops = 4, 300, 3000
		s := deadline.New[string](deadline.Config{MaxBatch: 16})
		type firing struct {
			at, fired time.Time
		}
		var mu sync.Mutex
		firings := map[string][]firing{}
		ctx, stop := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Run(ctx, func(due []deadline.Item[string]) {
				now := time.Now()
				mu.Lock()
				defer mu.Unlock()
				for _, it := range due {
					firings[it.Key] = append(firings[it.Key], firing{it.At, now})
				}
			})
		}()

		type last struct {
			cancelled bool
			at        time.Time // the deadline set, or when cancelled
		}
		lasts := make([]map[string]last, writers)
		var wg sync.WaitGroup
		for w := range writers {
			lasts[w] = map[string]last{}
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 7))
				for range ops {
					key := fmt.Sprintf("w%d-%d", w, r.IntN(keys))
					if r.IntN(4) == 0 {
						s.Cancel(key)
						lasts[w][key] = last{true, time.Now()}
					} else {
						at := time.Now().Add(time.Duration(r.IntN(50)) * time.Millisecond)
						s.Set(key, at)
						lasts[w][key] = last{false, at.UTC()}
					}
					if r.IntN(8) == 0 {
						time.Sleep(time.Duration(r.IntN(3)+1) * time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		stop()
		<-done

		if n := s.Len(); n != 0 {
			t.Errorf("Len() = %d after every deadline passed, want 0", n)
		}
		for key, fs := range firings {
			for _, f := range fs {
				if f.fired.Before(f.at) {
					t.Errorf("%s fired at %v, before its deadline %v", key, f.fired, f.at)
				}
			}
		}
		for w := range writers {
			for key, l := range lasts[w] {
				fs := firings[key]
				switch {
				case l.cancelled:
					if len(fs) > 0 && fs[len(fs)-1].fired.After(l.at) {
						t.Errorf("%s fired at %v after its Cancel at %v", key, fs[len(fs)-1].fired, l.at)
					}
				case len(fs) == 0:
					t.Errorf("%s never fired; last Set to %v", key, l.at)
				case !fs[len(fs)-1].at.Equal(l.at):
					t.Errorf("%s last fired for %v, want its last Set %v", key, fs[len(fs)-1].at, l.at)
				}
			}
		}
	})
}
