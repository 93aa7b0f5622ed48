package fall_test

import (
	"math"
	"testing"

	"vigil/internal/fall"
)

// FuzzParseModel feeds arbitrary bytes to ParseModel (a model file is
// outside input: `vigil fall eval --model FILE`). It must never panic, and
// a model it accepts must score any features without panicking and give a
// probability in [0, 1].
func FuzzParseModel(f *testing.F) {
	m, err := fall.DefaultModel()
	if err != nil {
		f.Fatal(err)
	}
	// A small seed (two trees): the whole default model is 42 KB, too
	// large for the fuzzer to mutate quickly.
	small := *m
	small.Trees, small.Info = m.Trees[:2], nil
	b, err := small.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := fall.ParseModel(data)
		if err != nil {
			return
		}
		var x fall.Features
		for i := range x {
			x[i] = float32(i) * 1.5
		}
		for _, v := range []float32{0, -1e30, 1e30, float32(math.NaN())} {
			x[0] = v
			if p := m.Probability(x); !(p >= 0 && p <= 1) {
				t.Fatalf("probability %v outside [0, 1]", p)
			}
		}
	})
}

// FuzzUnmarshalState feeds arbitrary bytes to a detector's UnmarshalBinary
// (saved state read back after a restart may be truncated or corrupt). It
// must never panic; on error the detector keeps its state, and a detector
// that accepted the bytes must keep taking samples.
func FuzzUnmarshalState(f *testing.F) {
	m, err := fall.DefaultModel()
	if err != nil {
		f.Fatal(err)
	}
	d := fall.New(m, fall.Config{})
	for i := range 300 {
		z := float32(1)
		if i == 150 {
			z = 3.5
		}
		d.Push(fall.Sample{T: int64(i) * 20e6, Accel: [3]float32{0, 0.05, z}})
	}
	saved, err := d.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(saved)
	f.Add(saved[:len(saved)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		d := fall.New(m, fall.Config{})
		if err := d.UnmarshalBinary(data); err != nil {
			before, _ := d.MarshalBinary()
			fresh, _ := fall.New(m, fall.Config{}).MarshalBinary()
			if string(before) != string(fresh) {
				t.Fatal("a refused state changed the detector")
			}
		}
		for i := range 400 {
			d.Push(fall.Sample{T: 1e12 + int64(i)*20e6, Accel: [3]float32{0.1, 0, 1}})
		}
	})
}
