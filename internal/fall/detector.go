// Package fall detects falls in a wearable's accelerometer stream.
//
// A Detector holds the small state of one device: a resampler to a fixed
// internal rate (Params.RateHz, 50 Hz), a ring buffer of the last few seconds
// and at most one open impact candidate. Each Push costs a few tens of
// nanoseconds; features are computed only when a candidate closes. The shape:
//
//	SMV ≥ TriggerG opens a candidate at its running peak
//	→ PostMs after the peak, Features over the window around it
//	  (peak, pre-impact dip, free-fall area, jerk, orientation change,
//	  post-impact variance and inactivity, …)
//	→ a gradient-boosted tree Model gives a probability
//	→ a Decision with the impact time, raised when the probability passes
//	  the model's threshold moved by the wearer's Config.Sensitivity.
//
// Time is an input: every Sample carries its own timestamp and the package
// never reads the clock. A Detector is not safe for concurrent use; run one
// per device (they share the immutable *Model). MarshalBinary and
// UnmarshalBinary save and resume a device's state across restarts.
//
// The package is domain code: it imports only the standard library (and
// must never import internal/app, the store, the bus or any network code).
// Dataset loading, training runs and evaluation live in its subpackages
// sisfall and lab.
package fall

import (
	"math"
)

// Sample is one reading of a device's inertial sensors.
type Sample struct {
	// T is the time of the sample in nanoseconds on the device's own
	// monotonic timeline (Unix nanoseconds work). Samples must come in
	// order; an earlier sample is ignored.
	T int64
	// Accel is the acceleration in g (1 g ≈ 9.81 m/s²) on three axes.
	Accel [3]float32
	// Gyro is the angular rate in °/s; optional, unused by model version 1.
	Gyro [3]float32
}

// Params fix the geometry of the detector. A model is trained with one set
// and carries it, so a Detector always runs with its model's Params.
type Params struct {
	RateHz   int     `json:"rate_hz"`   // internal rate after resampling
	TriggerG float64 `json:"trigger_g"` // SMV that opens an impact candidate
	PreMs    int     `json:"pre_ms"`    // history kept before the peak
	PostMs   int     `json:"post_ms"`   // wait after the peak before deciding
	GapMs    int     `json:"gap_ms"`    // a longer gap between samples resets the stream
}

// DefaultParams are the parameters the default model is trained with.
func DefaultParams() Params {
	return Params{RateHz: 50, TriggerG: 1.6, PreMs: 2000, PostMs: 2000, GapMs: 1000}
}

func (p Params) period() int64 { return int64(1e9) / int64(p.RateHz) }
func (p Params) preN() int     { return p.PreMs * p.RateHz / 1000 }
func (p Params) postN() int    { return p.PostMs * p.RateHz / 1000 }
func (p Params) gapN() int64   { return int64(p.GapMs * p.RateHz / 1000) }

// ringSize is the smallest power of two holding the pre and post windows.
func (p Params) ringSize() int {
	n := 1
	for n < p.preN()+p.postN()+2 {
		n <<= 1
	}
	return n
}

func (p Params) valid() bool {
	return p.RateHz >= 10 && p.RateHz <= 400 && p.TriggerG > 1 && p.TriggerG < 16 &&
		p.PreMs >= 1000 && p.PreMs <= 5000 && p.PostMs >= 1000 && p.PostMs <= 5000 &&
		p.GapMs >= 100 && p.GapMs <= 10000
}

// Config is the per-person tuning of a Detector; the zero value is the
// model's operating point.
type Config struct {
	// Sensitivity moves the decision threshold in log-odds: positive values
	// raise on lower probabilities (more falls caught, more false alarms),
	// negative ones need more evidence. It is clamped to the model's
	// SensitivityBounds, the range the evaluation measured.
	Sensitivity float64
	// RefractoryMs suppresses a second raise this soon after one; default
	// 30000.
	RefractoryMs int
}

// Decision is the outcome of one impact candidate.
type Decision struct {
	Fall        bool    // raise a fall
	Suppressed  bool    // would have raised, but within the refractory time of a raise
	Probability float64 // the model's probability that this impact is a fall
	ImpactT     int64   // time of the acceleration peak, ns
	T           int64   // time of the sample that completed the window, ns
	PeakG       float64 // peak signal magnitude vector, g
	Features    Features
}

// Detector is the streaming fall detector of one device.
type Detector struct {
	m      *Model
	p      Params
	logit  float64 // threshold in log-odds, after Sensitivity
	refrac int64   // ns

	// resampler: samples are averaged per bin of one internal period.
	bin     int64      // bin of the samples in sum
	sum     [3]float64 // sum of the accelerations in bin
	count   int32      // samples in sum
	nbin    int64      // bin of internal sample n
	started bool       // a bin has been opened

	// ring of internal samples; index n is the newest, filled the valid count.
	acc    [][3]float32
	smv    []float32
	mask   int64
	n      int64
	filled int64

	// open candidate
	cand  bool
	peakN int64
	peakG float32

	raised bool
	raiseT int64 // ImpactT of the last raise
}

// New returns the detector of one device running model m. Every device may
// share one m.
func New(m *Model, cfg Config) *Detector {
	p := m.Params
	size := p.ringSize()
	refrac := int64(cfg.RefractoryMs) * 1e6
	if cfg.RefractoryMs <= 0 {
		refrac = 30e9
	}
	d := &Detector{
		m: m, p: p,
		refrac: refrac,
		acc:    make([][3]float32, size),
		smv:    make([]float32, size),
		mask:   int64(size - 1),
	}
	d.SetSensitivity(cfg.Sensitivity)
	return d
}

// SetSensitivity changes the wearer's tuning (Config.Sensitivity) from the
// next decision on, clamped to the model's SensitivityBounds.
func (d *Detector) SetSensitivity(v float64) {
	th := d.m.Threshold
	if th <= 0 || th >= 1 {
		th = 0.5
	}
	if math.IsNaN(v) {
		v = 0
	}
	off := min(max(v, d.m.SensitivityBounds[0]), d.m.SensitivityBounds[1])
	d.logit = math.Log(th/(1-th)) - off
}

// Threshold is the probability at or above which this detector raises.
func (d *Detector) Threshold() float64 { return 1 / (1 + math.Exp(-d.logit)) }

// Push feeds one sample. When the sample closes an impact candidate it
// returns that candidate's Decision and true; most samples return false.
func (d *Detector) Push(s Sample) (Decision, bool) {
	per := d.p.period()
	b := s.T / per
	if s.T < 0 {
		b = (s.T - per + 1) / per
	}
	if !d.started {
		d.started, d.bin = true, b
	}
	var dec Decision
	var ok bool
	switch {
	case b < d.bin:
		return Decision{}, false // out of order: ignore
	case b > d.bin:
		if d.count > 0 {
			c := float64(d.count)
			v := [3]float32{float32(d.sum[0] / c), float32(d.sum[1] / c), float32(d.sum[2] / c)}
			if dd, k := d.step(v, d.bin, s.T); k {
				dec, ok = dd, true
			}
			gap := b - d.bin
			if gap > d.p.gapN() {
				d.resetStream()
			} else {
				// Fill skipped bins (a device slower than the internal
				// rate) by linear interpolation towards this sample.
				for k := int64(1); k < gap; k++ {
					f := float32(k) / float32(gap)
					w := [3]float32{
						v[0] + f*(s.Accel[0]-v[0]),
						v[1] + f*(s.Accel[1]-v[1]),
						v[2] + f*(s.Accel[2]-v[2]),
					}
					if dd, k := d.step(w, d.bin+k, s.T); k && !ok {
						dec, ok = dd, true
					}
				}
			}
		}
		d.bin, d.sum, d.count = b, [3]float64{}, 0
	}
	d.sum[0] += float64(s.Accel[0])
	d.sum[1] += float64(s.Accel[1])
	d.sum[2] += float64(s.Accel[2])
	d.count++
	return dec, ok
}

// resetStream forgets the history after a gap in the data.
func (d *Detector) resetStream() {
	d.filled = 0
	d.cand = false
}

// step processes one internal sample of bin b; now is the input time that
// produced it.
func (d *Detector) step(v [3]float32, b, now int64) (Decision, bool) {
	d.nbin = b
	d.n++
	i := d.n & d.mask
	d.acc[i] = v
	g := float32(math.Sqrt(float64(v[0]*v[0] + v[1]*v[1] + v[2]*v[2])))
	d.smv[i] = g
	if d.filled <= d.mask {
		d.filled++
	}
	if d.cand {
		if g > d.peakG {
			d.peakN, d.peakG = d.n, g
		} else if d.n-d.peakN >= int64(d.p.postN()) {
			d.cand = false
			return d.decide(now), true
		}
		return Decision{}, false
	}
	if float64(g) >= d.p.TriggerG {
		d.cand, d.peakN, d.peakG = true, d.n, g
	}
	return Decision{}, false
}

func (d *Detector) decide(now int64) Decision {
	f := d.features()
	per := d.p.period()
	impact := (d.nbin-(d.n-d.peakN))*per + per/2
	score := d.m.score(&f)
	dec := Decision{
		Probability: 1 / (1 + math.Exp(-score)),
		ImpactT:     impact,
		T:           now,
		PeakG:       float64(d.peakG),
		Features:    f,
	}
	if len(d.m.Trees) > 0 && score >= d.logit {
		if d.raised && impact-d.raiseT < d.refrac {
			dec.Suppressed = true
		} else {
			dec.Fall = true
			d.raised, d.raiseT = true, impact
		}
	}
	return dec
}
