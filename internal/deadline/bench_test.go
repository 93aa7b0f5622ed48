package deadline_test

import (
	"context"
	"encoding/base32"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"vigil/internal/deadline"
)

// The benchmarks measure the targets of the check-in scheduler at a million
// pending deadlines: memory per deadline, lateness of fires in real time,
// and the time to rebuild after a restart. Run them with
//
//	go test -run XXX -bench . -count 5 -benchtime 1x ./internal/deadline/
//
// Each iteration is a whole experiment (the lateness ones take about 25 s
// of real time), so one iteration per run is enough; several iterations are
// pooled.

const million = 1_000_000

// keyGen makes session-like keys: "s" and 16 lowercase base32 characters
// (17 bytes, one allocation each), from a fixed seed.
type keyGen struct{ r *rand.Rand }

func newKeyGen(seed uint64) keyGen { return keyGen{rand.New(rand.NewPCG(seed, 17))} }

func (g keyGen) next() string {
	var raw [10]byte
	for i := range raw {
		raw[i] = byte(g.r.Uint32())
	}
	var b [17]byte
	b[0] = 's'
	base32.StdEncoding.Encode(b[1:], raw[:])
	for i, c := range b[1:] {
		if 'A' <= c && c <= 'Z' {
			b[1+i] = c + 'a' - 'A'
		}
	}
	return string(b[:])
}

// items returns n items with distinct keys (collisions are not worth
// checking at 80 random bits) and deadlines spread uniformly over d from t0.
func items(n int, t0 time.Time, d time.Duration, seed uint64) []deadline.Item[string] {
	g := newKeyGen(seed)
	r := rand.New(rand.NewPCG(seed, 3))
	its := make([]deadline.Item[string], n)
	for i := range its {
		its[i] = deadline.Item[string]{Key: g.next(), At: t0.Add(time.Duration(r.Int64N(int64(d))))}
	}
	return its
}

func liveHeap() (alloc, inuse uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.HeapInuse
}

// BenchmarkMemory1M reports the live heap per pending deadline with 1M
// string keys, the keys' own bytes included (the scheduler is what keeps
// them alive). B/deadline counts allocated objects (after size-class
// rounding); inuse-B/deadline counts whole spans in use.
func BenchmarkMemory1M(b *testing.B) {
	t0 := time.Now()
	for _, how := range []string{"set", "load"} {
		b.Run(how, func(b *testing.B) {
			var alloc, inuse float64
			for i := range b.N {
				a0, u0 := liveHeap()
				s := deadline.New[string](deadline.Config{})
				if how == "set" {
					g := newKeyGen(uint64(i))
					r := rand.New(rand.NewPCG(uint64(i), 3))
					for range million {
						s.Set(g.next(), t0.Add(time.Duration(r.Int64N(int64(24*time.Hour)))))
					}
				} else {
					its := items(million, t0, 24*time.Hour, uint64(i))
					s.Load(its)
				}
				a1, u1 := liveHeap()
				if s.Len() != million {
					b.Fatalf("Len() = %d, want %d", s.Len(), million)
				}
				runtime.KeepAlive(s)
				alloc += float64(int64(a1)-int64(a0)) / million
				inuse += float64(int64(u1)-int64(u0)) / million
			}
			b.ReportMetric(alloc/float64(b.N), "B/deadline")
			b.ReportMetric(inuse/float64(b.N), "inuse-B/deadline")
		})
	}
}

// BenchmarkRebuild1M reports the time to rebuild 1M deadlines from items
// already in memory: one Load (a heapify) against a Set per item.
func BenchmarkRebuild1M(b *testing.B) {
	its := items(million, time.Now(), 24*time.Hour, 1)
	for _, how := range []string{"load", "set"} {
		b.Run(how, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				runtime.GC()
				s := deadline.New[string](deadline.Config{})
				b.StartTimer()
				if how == "load" {
					s.Load(its)
				} else {
					for _, it := range its {
						s.Set(it.Key, it.At)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/rebuild")
		})
	}
}

// BenchmarkSetMove1M reports the cost of moving one key's deadline (a
// check-in) among 1M pending ones.
func BenchmarkSetMove1M(b *testing.B) {
	t0 := time.Now()
	its := items(million, t0, 24*time.Hour, 1)
	s := deadline.New[string](deadline.Config{})
	s.Load(its)
	r := rand.New(rand.NewPCG(1, 1))
	for i := 0; b.Loop(); i++ {
		s.Set(its[i%million].Key, t0.Add(time.Duration(r.Int64N(int64(24*time.Hour)))))
	}
}

// BenchmarkLateness1M fires 1M deadlines spread evenly over 20 s of real
// time (not synctest) and reports how late fire saw them: time.Since(At)
// for each item, p50, p99 and max. "set" Sets every deadline before the
// clock starts; "load+churn" Loads them and meanwhile moves or cancels
// about 10,000 random keys per second from another goroutine, as check-ins
// do. A benchmark, not a test: the figures depend on the machine.
//
// The machine is shared, so each run also has a peer: a goroutine that
// sleeps 1 ms in a loop over the same 20 s and reports its oversleep
// (probe-p99-ms, probe-max-ms). Lateness near the probe's is the machine's,
// not the scheduler's. gc-pause-max-ms is the longest stop-the-world pause
// of the collector during the runs.
func BenchmarkLateness1M(b *testing.B) {
	for _, churn := range []bool{false, true} {
		name := "set"
		if churn {
			name = "load+churn"
		}
		b.Run(name, func(b *testing.B) {
			var late, probe []time.Duration
			var fired, ops, setup float64
			var gcPause time.Duration
			for i := range b.N {
				r := latenessRun(b, churn, uint64(i))
				late = append(late, r.late...)
				probe = append(probe, r.probe...)
				fired += float64(len(r.late))
				ops += float64(r.ops)
				setup += float64(r.setup) / float64(time.Millisecond)
				gcPause = max(gcPause, r.gcPause)
			}
			slices.Sort(late)
			slices.Sort(probe)
			ms := func(d []time.Duration, p float64) float64 {
				return float64(d[int(p*float64(len(d)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(late, 0.50), "p50-ms")
			b.ReportMetric(ms(late, 0.99), "p99-ms")
			b.ReportMetric(ms(late, 1), "max-ms")
			b.ReportMetric(ms(probe, 0.99), "probe-p99-ms")
			b.ReportMetric(ms(probe, 1), "probe-max-ms")
			b.ReportMetric(float64(gcPause)/float64(time.Millisecond), "gc-pause-max-ms")
			b.ReportMetric(fired/float64(b.N), "fired")
			b.ReportMetric(ops/float64(b.N), "churn-ops")
			b.ReportMetric(setup/float64(b.N), "setup-ms")
		})
	}
}

type lateness struct {
	late, probe []time.Duration
	ops         int
	setup       time.Duration
	gcPause     time.Duration // longest stop-the-world pause of the GC
}

func latenessRun(b *testing.B, churn bool, seed uint64) lateness {
	const (
		spread = 20 * time.Second
		lead   = 5 * time.Second // room to Set 1M before the first is due
		rate   = 10_000          // churn operations per second
	)
	var (
		s    *deadline.Scheduler[string]
		keys []string
		base time.Time
		res  lateness
	)
	for attempt := 1; ; attempt++ {
		runtime.GC()
		start := time.Now()
		base = start.Add(lead)
		its := items(million, base, spread, seed)
		keys = make([]string, len(its))
		for j := range its {
			its[j].At = base.Add(time.Duration(j) * (spread / million)) // evenly
			keys[j] = its[j].Key
		}
		s = deadline.New[string](deadline.Config{})
		if churn {
			s.Load(its)
		} else {
			for _, it := range its {
				s.Set(it.Key, it.At)
			}
		}
		res.setup = time.Since(start)
		if time.Now().Before(base) {
			break
		}
		// Only a starved machine takes this long; start again.
		if attempt == 3 {
			b.Fatalf("setup took %v, more than the %v lead, %d times", res.setup, lead, attempt)
		}
		b.Logf("setup took %v, more than the %v lead: again", res.setup, lead)
	}

	res.late = make([]time.Duration, 0, million+2*rate*int(spread/time.Second))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gc0 := ms.NumGC
	ctx, stop := context.WithTimeout(b.Context(), lead+spread+5*time.Second)
	defer stop()
	allFired := make(chan struct{})
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		s.Run(ctx, func(due []deadline.Item[string]) {
			for _, it := range due {
				res.late = append(res.late, time.Since(it.At))
			}
			if !churn && len(res.late) == million {
				close(allFired) // nothing is added again: once
			}
		})
	}()
	probeDone := make(chan []time.Duration)
	go func() { probeDone <- sleepProbe(base, base.Add(spread)) }()
	if churn {
		res.ops = churnUntil(s, keys, base, base.Add(spread), rate, seed)
		time.Sleep(time.Until(base.Add(spread + time.Second)))
	} else {
		select {
		case <-allFired:
		case <-ctx.Done():
			b.Fatalf("only %d of %d fired in time", len(res.late), million)
		}
	}
	res.probe = <-probeDone
	stop()
	<-runDone
	runtime.ReadMemStats(&ms)
	for n := gc0 + 1; n <= ms.NumGC && n+255 > ms.NumGC; n++ {
		res.gcPause = max(res.gcPause, time.Duration(ms.PauseNs[(n+255)%256]))
	}
	return res
}

// sleepProbe sleeps 1 ms at a time from start to end and returns how much
// longer than 1 ms each sleep took.
func sleepProbe(start, end time.Time) []time.Duration {
	time.Sleep(time.Until(start))
	var over []time.Duration
	for time.Now().Before(end) {
		t := time.Now()
		time.Sleep(time.Millisecond)
		over = append(over, time.Since(t)-time.Millisecond)
	}
	return over
}

// churnUntil moves (4 in 5) or cancels (1 in 5) random keys at rate per
// second from start to end, and returns the number of operations. A moved
// deadline lands uniformly between now and end; a key that already fired
// is added again, like a session's next check-in.
func churnUntil(s *deadline.Scheduler[string], keys []string, start, end time.Time, rate int, seed uint64) int {
	r := rand.New(rand.NewPCG(seed, 5))
	time.Sleep(time.Until(start))
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	done := 0
	for now := range tick.C {
		if !now.Before(end) {
			break
		}
		for want := int(now.Sub(start).Seconds() * float64(rate)); done < want; done++ {
			key := keys[r.IntN(len(keys))]
			if r.IntN(5) == 0 {
				s.Cancel(key)
			} else {
				s.Set(key, now.Add(time.Duration(r.Int64N(int64(end.Sub(now))+1))))
			}
		}
	}
	return done
}

// BenchmarkDrain1M reports how fast Run fires a backlog: 1M deadlines all
// past when Run starts (as after an outage), fired in batches to a fire
// that only counts them.
func BenchmarkDrain1M(b *testing.B) {
	its := items(million, time.Now().Add(-time.Hour), time.Hour, 1)
	var total time.Duration
	for range b.N {
		b.StopTimer()
		s := deadline.New[string](deadline.Config{})
		s.Load(its)
		runtime.GC()
		ctx, stop := context.WithCancel(b.Context())
		b.StartTimer()
		start := time.Now()
		n := 0
		s.Run(ctx, func(due []deadline.Item[string]) {
			if n += len(due); n == million {
				stop()
			}
		})
		total += time.Since(start)
		stop()
	}
	b.ReportMetric(float64(million)*float64(b.N)/total.Seconds(), "fires/s")
}
