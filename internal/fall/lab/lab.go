// Package lab trains and measures the fall detector on recordings in the
// SisFall layout: it loads the files, replays each one through a streaming
// fall.Detector exactly as a live device stream (resampled to the device
// rate, fed sample by sample), labels the impact candidates, trains models,
// runs leave-subjects-out cross-validation and writes the report and the
// ROC plot.
//
// It is tooling for `vigil fall train|eval`, not product code: the server
// imports only internal/fall. It imports the standard library, internal/fall
// and internal/fall/sisfall, and must not import internal/app, the store or
// any network code. Work is spread over Options.Workers goroutines that end
// before each function returns; results never depend on their number.
package lab

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"vigil/internal/fall"
	"vigil/internal/fall/sisfall"
)

// Options tune loading and replay; the zero value works.
type Options struct {
	// RateHz is the device rate the recordings are resampled to before
	// replay; it must divide 200. Default 50.
	RateHz int
	// Workers is the number of files processed at once; default 2.
	Workers int
	// Progress, if set, is called after each file with the count done.
	Progress func(done, total int)
}

func (o Options) withDefaults() Options {
	if o.RateHz == 0 {
		o.RateHz = 50
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	return o
}

// Recording is one file ready for training and replay.
type Recording struct {
	sisfall.File
	Seconds float64
	// Train holds the candidates found by replaying the file at its native
	// 200 Hz through a detector without a classifier: the training examples.
	Train []fall.Decision
	// Label says for each Train candidate: +1 fall impact, 0 daily
	// activity, -1 not used (the rest of a fall file).
	Label []int8
	// RateHz is the rate of Accel; PeakT and PeakG locate its largest
	// signal magnitude vector (the acceleration peak latency is measured from).
	RateHz int
	Accel  [][3]float32
	PeakT  int64
	PeakG  float64
}

// ImpactWindow is how close a candidate's peak must be to a fall file's
// largest acceleration peak to be its fall impact.
const ImpactWindow = int64(1e9)

// Load reads every recording under dir, in List order.
func Load(ctx context.Context, dir string, p fall.Params, o Options) ([]Recording, error) {
	o = o.withDefaults()
	if o.RateHz <= 0 || sisfall.Rate%o.RateHz != 0 {
		return nil, fmt.Errorf("lab: rate %d Hz: want a divisor of %d (25, 40, 50, 100 or 200)", o.RateHz, sisfall.Rate)
	}
	files, err := sisfall.List(dir)
	if err != nil {
		return nil, err
	}
	recs := make([]Recording, len(files))
	err = parallel(ctx, len(files), o, func(i int) error {
		r, err := sisfall.Load(files[i])
		if err != nil {
			return err
		}
		recs[i] = prepare(r, p, o.RateHz)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}

func prepare(r sisfall.Recording, p fall.Params, rate int) Recording {
	rec := Recording{File: r.File, Seconds: r.Seconds(), RateHz: rate}
	// Training candidates at the native rate.
	d := fall.New(&fall.Model{Params: p, Threshold: 0.5}, fall.Config{})
	per := int64(1e9 / sisfall.Rate)
	var peakT int64
	var peakG float64
	for i, a := range r.Accel {
		t := int64(i) * per
		if g := smv(a); g > peakG {
			peakG, peakT = g, t
		}
		if dec, ok := d.Push(fall.Sample{T: t, Accel: a}); ok {
			rec.Train = append(rec.Train, dec)
		}
	}
	rec.Label = make([]int8, len(rec.Train))
	for k, c := range rec.Train {
		switch {
		case !r.Fall():
			rec.Label[k] = 0
		case abs(c.ImpactT-peakT) <= ImpactWindow:
			rec.Label[k] = 1
		default:
			rec.Label[k] = -1
		}
	}
	rec.Accel = Resample(r.Accel, sisfall.Rate, rate)
	for i, a := range rec.Accel {
		if g := smv(a); g > rec.PeakG {
			rec.PeakG, rec.PeakT = g, int64(i)*int64(1e9)/int64(rate)
		}
	}
	return rec
}

func smv(a [3]float32) float64 {
	return math.Sqrt(float64(a[0])*float64(a[0]) + float64(a[1])*float64(a[1]) + float64(a[2])*float64(a[2]))
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// Resample turns a recording at from Hz into one at to Hz by averaging
// blocks of from/to samples, as a device's accelerometer does at a lower
// output data rate. to must divide from.
func Resample(a [][3]float32, from, to int) [][3]float32 {
	k := from / to
	if k <= 1 {
		return a
	}
	out := make([][3]float32, 0, len(a)/k)
	for i := 0; i+k <= len(a); i += k {
		var s [3]float64
		for _, v := range a[i : i+k] {
			s[0] += float64(v[0])
			s[1] += float64(v[1])
			s[2] += float64(v[2])
		}
		out = append(out, [3]float32{float32(s[0] / float64(k)), float32(s[1] / float64(k)), float32(s[2] / float64(k))})
	}
	return out
}

// parallel runs fn(0..n-1) on o.Workers goroutines, stopping at the first
// error or when ctx is done.
func parallel(ctx context.Context, n int, o Options, fn func(i int) error) error {
	var (
		mu   sync.Mutex
		next int
		done int
		errs []error
		wg   sync.WaitGroup
	)
	for range min(o.Workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= n || len(errs) > 0 || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				err := fn(i)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				done++
				if o.Progress != nil && err == nil {
					o.Progress(done, n)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return ctx.Err()
}

// Replay is the outcome of streaming one recording through a detector.
type Replay struct {
	Rec       *Recording
	Decisions []fall.Decision // every closed candidate, in order
	// Margin is the largest log-odds margin of any candidate over the
	// detector's threshold (−Inf without candidates): the file raises at
	// sensitivity offset o exactly when Margin ≥ −o.
	Margin float64
}

// Raised reports whether any candidate raised a fall, and the first one.
func (r Replay) Raised() (fall.Decision, bool) {
	for _, d := range r.Decisions {
		if d.Fall {
			return d, true
		}
	}
	return fall.Decision{}, false
}

// Raises counts the raises (refractory suppressions excluded).
func (r Replay) Raises() int {
	n := 0
	for _, d := range r.Decisions {
		if d.Fall {
			n++
		}
	}
	return n
}

// ReplayAll streams each recording, sample by sample at its RateHz, through
// a new detector running m with cfg. modelFor, if set, picks the model per
// recording (cross-validation); otherwise m is used for all.
func ReplayAll(ctx context.Context, recs []Recording, idx []int, modelFor func(*Recording) *fall.Model, cfg fall.Config, o Options) ([]Replay, error) {
	o = o.withDefaults()
	out := make([]Replay, len(idx))
	err := parallel(ctx, len(idx), o, func(k int) error {
		r := &recs[idx[k]]
		m := modelFor(r)
		if m == nil {
			return errors.New("lab: no model for " + r.Path)
		}
		out[k] = replay(r, m, cfg)
		return nil
	})
	return out, err
}

func replay(r *Recording, m *fall.Model, cfg fall.Config) Replay {
	d := fall.New(m, cfg)
	th := d.Threshold()
	lth := math.Log(th / (1 - th))
	rep := Replay{Rec: r, Margin: math.Inf(-1)}
	per := int64(1e9) / int64(r.RateHz)
	for i, a := range r.Accel {
		if dec, ok := d.Push(fall.Sample{T: int64(i) * per, Accel: a}); ok {
			rep.Decisions = append(rep.Decisions, dec)
			rep.Margin = max(rep.Margin, logit(dec.Probability)-lth)
		}
	}
	return rep
}

func logit(p float64) float64 {
	p = min(max(p, 1e-12), 1-1e-12)
	return math.Log(p / (1 - p))
}
