package fall_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"vigil/internal/fall"
	"vigil/internal/fall/lab"
	"vigil/internal/fall/sisfall"
)

// Real SisFall recordings (Sucerquia et al. 2017) kept in testdata: a young
// adult's backward slip fall, and an elderly subject collapsing into a chair
// (D11, one of the hard daily activities).
const (
	fallFile = "testdata/sisfall/SA03/F02_SA03_R02.txt.bz2"
	adlFile  = "testdata/sisfall/SE03/D11_SE03_R03.txt.bz2"
)

func load(t testing.TB, path string) sisfall.Recording {
	t.Helper()
	r, err := sisfall.LoadPath(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func defaultModel(t testing.TB) *fall.Model {
	t.Helper()
	m, err := fall.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// stream turns a 200 Hz recording into samples at rate Hz, as a device at
// that rate would send them, starting at time t0.
func stream(r sisfall.Recording, rate int, t0 int64) []fall.Sample {
	acc := lab.Resample(r.Accel, sisfall.Rate, rate)
	out := make([]fall.Sample, len(acc))
	per := int64(1e9) / int64(rate)
	for i, a := range acc {
		out[i] = fall.Sample{T: t0 + int64(i)*per, Accel: a}
	}
	return out
}

func peakTime(s []fall.Sample) int64 {
	var best float64
	var at int64
	for _, x := range s {
		a := x.Accel
		if g := math.Sqrt(float64(a[0]*a[0] + a[1]*a[1] + a[2]*a[2])); g > best {
			best, at = g, x.T
		}
	}
	return at
}

func run(d *fall.Detector, s []fall.Sample) []fall.Decision {
	var out []fall.Decision
	for _, x := range s {
		if dec, ok := d.Push(x); ok {
			out = append(out, dec)
		}
	}
	return out
}

func raises(ds []fall.Decision) []fall.Decision {
	var out []fall.Decision
	for _, d := range ds {
		if d.Fall {
			out = append(out, d)
		}
	}
	return out
}

func TestDetectsRealFallAtEveryRate(t *testing.T) {
	m := defaultModel(t)
	fallRec, adlRec := load(t, fallFile), load(t, adlFile)
	const t0 = int64(1_764_400_000) * 1e9 // a Unix time: timestamps are inputs
	for _, rate := range []int{25, 50, 100, 200} {
		s := stream(fallRec, rate, t0)
		peak := peakTime(s)
		got := raises(run(fall.New(m, fall.Config{}), s))
		if len(got) != 1 {
			t.Fatalf("%d Hz: fall file raised %d times, want 1", rate, len(got))
		}
		d := got[0]
		if d.Probability < m.Threshold || d.PeakG < 2 {
			t.Errorf("%d Hz: decision %+v", rate, d)
		}
		if dt := d.ImpactT - peak; dt < -100e6 || dt > 100e6 {
			t.Errorf("%d Hz: impact at %v ms from the acceleration peak, want within 100 ms", rate, dt/1e6)
		}
		if lat := d.T - peak; lat < 0 || lat > 3e9 {
			t.Errorf("%d Hz: decision %v ms after the peak, want within 3 s", rate, lat/1e6)
		}
		if got := raises(run(fall.New(m, fall.Config{}), stream(adlRec, rate, t0))); len(got) != 0 {
			t.Errorf("%d Hz: daily-activity file raised %+v", rate, got)
		}
	}
}

// At 50, 100 and 200 Hz the detector sees the same internal 50 Hz signal, so
// the decisions are the same candidate for candidate.
func TestRatesGiveConsistentDecisions(t *testing.T) {
	m := defaultModel(t)
	for _, path := range []string{fallFile, adlFile} {
		r := load(t, path)
		ref := run(fall.New(m, fall.Config{}), stream(r, 50, 0))
		if len(ref) == 0 {
			t.Fatalf("%s: no candidates at 50 Hz", path)
		}
		for _, rate := range []int{100, 200} {
			got := run(fall.New(m, fall.Config{}), stream(r, rate, 0))
			if len(got) != len(ref) {
				t.Fatalf("%s at %d Hz: %d candidates, 50 Hz had %d", path, rate, len(got), len(ref))
			}
			for i := range got {
				if got[i].Fall != ref[i].Fall || got[i].ImpactT != ref[i].ImpactT || math.Abs(got[i].Probability-ref[i].Probability) > 1e-4 {
					t.Errorf("%s at %d Hz, candidate %d: %+v, 50 Hz: %+v", path, rate, i, got[i], ref[i])
				}
			}
		}
	}
}

func TestMarshalRoundTripMidStream(t *testing.T) {
	m := defaultModel(t)
	s := stream(load(t, fallFile), 50, 0)
	want := run(fall.New(m, fall.Config{}), s)
	// Cut at several points, including inside the open candidate.
	peak := peakTime(s)
	for _, cut := range []int{1, 200, int(peak/20e6) + 10, int(peak/20e6) + 60, len(s) - 1} {
		a := fall.New(m, fall.Config{})
		got := run(a, s[:cut])
		b, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 4096 {
			t.Errorf("state is %d bytes, want small", len(b))
		}
		resumed := fall.New(m, fall.Config{})
		if err := resumed.UnmarshalBinary(b); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		got = append(got, run(resumed, s[cut:])...)
		if len(got) != len(want) {
			t.Fatalf("cut %d: %d decisions, want %d", cut, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("cut %d, decision %d: %+v, want %+v", cut, i, got[i], want[i])
			}
		}
	}
}

func TestUnmarshalRejectsBadState(t *testing.T) {
	m := defaultModel(t)
	d := fall.New(m, fall.Config{})
	run(d, stream(load(t, adlFile), 50, 0))
	good, _ := d.MarshalBinary()
	more := stream(load(t, adlFile), 50, 20e9)[:100]
	bad := map[string][]byte{
		"empty":       nil,
		"header":      append([]byte("XXXX"), good[4:]...),
		"truncated":   good[:len(good)-5],
		"extra bytes": append(append([]byte{}, good...), 0),
	}
	for name, b := range bad {
		fresh := fall.New(m, fall.Config{})
		if err := fresh.UnmarshalBinary(b); !errors.Is(err, fall.ErrState) {
			t.Errorf("%s: got %v, want ErrState", name, err)
		}
	}
	// Every truncation and every flipped byte: an error or a usable
	// detector, never a panic.
	for i := range good {
		fresh := fall.New(m, fall.Config{})
		_ = fresh.UnmarshalBinary(good[:i])
		c := append([]byte{}, good...)
		c[i] ^= 0xff
		if fresh.UnmarshalBinary(c) == nil {
			run(fresh, more)
		}
	}
}

func TestSensitivityIsClampedAndMovesThreshold(t *testing.T) {
	m := defaultModel(t)
	base := fall.New(m, fall.Config{}).Threshold()
	if math.Abs(base-m.Threshold) > 1e-9 {
		t.Fatalf("threshold %v, model says %v", base, m.Threshold)
	}
	more := fall.New(m, fall.Config{Sensitivity: 1}).Threshold()
	less := fall.New(m, fall.Config{Sensitivity: -1}).Threshold()
	if !(more < base && base < less) {
		t.Errorf("thresholds: +1 %v, 0 %v, -1 %v; want decreasing with sensitivity", more, base, less)
	}
	hi := fall.New(m, fall.Config{Sensitivity: 100}).Threshold()
	atBound := fall.New(m, fall.Config{Sensitivity: m.SensitivityBounds[1]}).Threshold()
	if hi != atBound {
		t.Errorf("sensitivity 100 gives threshold %v, the bound %v gives %v", hi, m.SensitivityBounds[1], atBound)
	}
}

// A gap in the data drops the open candidate instead of mixing the two
// sides; samples that go back in time are ignored.
func TestGapsAndDisorder(t *testing.T) {
	m := defaultModel(t)
	s := stream(load(t, fallFile), 50, 0)
	peak := int(peakTime(s) / 20e6)
	cut := append(append([]fall.Sample{}, s[:peak+5]...), s[peak+5:]...)
	for i := peak + 5; i < len(cut); i++ {
		cut[i].T += 5e9 // five seconds of silence after the impact
	}
	if got := raises(run(fall.New(m, fall.Config{}), cut)); len(got) != 0 {
		t.Errorf("raised across a gap: %+v", got)
	}
	var shuffled []fall.Sample
	for i, x := range s {
		shuffled = append(shuffled, x)
		if i > 10 {
			shuffled = append(shuffled, s[i-10]) // a late duplicate
		}
	}
	want := run(fall.New(m, fall.Config{}), s)
	got := run(fall.New(m, fall.Config{}), shuffled)
	if len(got) != len(want) || len(raises(got)) != 1 {
		t.Errorf("with late samples: %d decisions, want %d", len(got), len(want))
	}
}

func TestTrainIsDeterministic(t *testing.T) {
	x, y := synthetic(2000, 7)
	a, err := fall.Train(x, y, fall.DefaultParams(), fall.TrainConfig{Seed: 3, Trees: 30})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := fall.Train(x, y, fall.DefaultParams(), fall.TrainConfig{Seed: 3, Trees: 30})
	c, _ := fall.Train(x, y, fall.DefaultParams(), fall.TrainConfig{Seed: 4, Trees: 30})
	ab, _ := a.Marshal()
	bb, _ := b.Marshal()
	cb, _ := c.Marshal()
	if !bytes.Equal(ab, bb) {
		t.Error("same seed, different models")
	}
	if bytes.Equal(ab, cb) {
		t.Error("different seeds, same model: the seed is unused")
	}
	// It learned something: accuracy on its own training data.
	right := 0
	for i := range x {
		if (a.Probability(x[i]) >= 0.5) == y[i] {
			right++
		}
	}
	if acc := float64(right) / float64(len(x)); acc < 0.9 {
		t.Errorf("training accuracy %.3f, want ≥ 0.9", acc)
	}
	// And it survives the file format.
	back, err := fall.ParseModel(ab)
	if err != nil {
		t.Fatal(err)
	}
	for i := range x[:100] {
		if back.Probability(x[i]) != a.Probability(x[i]) {
			t.Fatalf("example %d: %v after a round trip, %v before", i, back.Probability(x[i]), a.Probability(x[i]))
		}
	}
	if _, err := fall.Train(x[:10], make([]bool, 10), fall.DefaultParams(), fall.TrainConfig{}); !errors.Is(err, fall.ErrNoExamples) {
		t.Errorf("one class: got %v, want ErrNoExamples", err)
	}
}

// synthetic makes separable-ish examples: falls have a high peak and a
// large tilt.
func synthetic(n int, seed uint64) ([]fall.Features, []bool) {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]fall.Features, n)
	y := make([]bool, n)
	for i := range x {
		y[i] = rng.IntN(4) == 0
		for k := range x[i] {
			x[i][k] = float32(rng.NormFloat64())
		}
		if y[i] {
			x[i][fall.FPeak] += 2.5
			x[i][fall.FTilt] += 2
		}
	}
	return x, y
}

func TestParseModelRejects(t *testing.T) {
	good, err := defaultModel(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fall.ParseModel(good); err != nil {
		t.Fatalf("the default model does not round-trip: %v", err)
	}
	bad := map[string]func(*fall.Model){
		"format":    func(m *fall.Model) { m.Format = "x" },
		"version":   func(m *fall.Model) { m.Version = 99 },
		"features":  func(m *fall.Model) { m.Features = m.Features[1:] },
		"threshold": func(m *fall.Model) { m.Threshold = 1 },
		"params":    func(m *fall.Model) { m.Params.RateHz = 0 },
		"bounds":    func(m *fall.Model) { m.SensitivityBounds = [2]float64{1, 2} },
		"tree":      func(m *fall.Model) { m.Trees[0].F[0] = 100 },
		"lengths":   func(m *fall.Model) { m.Trees[0].V = m.Trees[0].V[:1] },
	}
	for name, breakIt := range bad {
		m, _ := fall.ParseModel(good)
		breakIt(m)
		b, _ := m.Marshal()
		if _, err := fall.ParseModel(b); !errors.Is(err, fall.ErrModel) {
			t.Errorf("%s: got %v, want ErrModel", name, err)
		}
	}
	if _, err := fall.ParseModel([]byte("{")); err == nil {
		t.Error("broken JSON accepted")
	}
}

func TestSetSensitivity(t *testing.T) {
	m, err := fall.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	d := fall.New(m, fall.Config{})
	base := d.Threshold()
	d.SetSensitivity(1)
	if !(d.Threshold() < base) {
		t.Errorf("sensitivity +1: threshold %v, want below the operating point %v", d.Threshold(), base)
	}
	lo, hi := m.SensitivityBounds[0], m.SensitivityBounds[1]
	d.SetSensitivity(hi)
	atHi := d.Threshold()
	d.SetSensitivity(hi + 100)
	if d.Threshold() != atHi {
		t.Errorf("sensitivity above the bounds not clamped: %v, want %v", d.Threshold(), atHi)
	}
	d.SetSensitivity(lo - 100)
	if got := fall.New(m, fall.Config{Sensitivity: lo}).Threshold(); d.Threshold() != got {
		t.Errorf("sensitivity below the bounds: %v, want %v", d.Threshold(), got)
	}
	d.SetSensitivity(math.NaN())
	if d.Threshold() != base {
		t.Errorf("NaN sensitivity: threshold %v, want the operating point %v", d.Threshold(), base)
	}
}
