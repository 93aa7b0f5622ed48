package fall_test

import (
	"testing"

	"vigil/internal/fall"
)

// BenchmarkPush10kStreams feeds 10,000 devices at 50 Hz in lockstep, one
// sample per device per tick, so each Push touches a different device's
// state as a server handling many streams does. The signals are the two real
// recordings in testdata (a fall and a daily activity), each device starting
// at its own offset, so impact candidates are evaluated at a realistic rate.
//
//	go test ./internal/fall -run '^$' -bench Push10k -benchtime 2000000x
//
// streams/core is how many 50 Hz devices one core keeps up with.
func BenchmarkPush10kStreams(b *testing.B) {
	const devices = 10_000
	m := defaultModel(b)
	signals := [][]fall.Sample{stream(load(b, fallFile), 50, 0), stream(load(b, adlFile), 50, 0)}
	ds := make([]*fall.Detector, devices)
	offs := make([]int, devices)
	for i := range ds {
		ds[i] = fall.New(m, fall.Config{})
		offs[i] = i * 37
	}
	b.ReportAllocs()
	b.ResetTimer()
	dev, tick := 0, int64(0)
	for range b.N {
		sig := signals[dev&1]
		s := sig[(int(tick)+offs[dev])%len(sig)]
		s.T = tick * 20e6
		ds[dev].Push(s)
		dev++
		if dev == devices {
			dev, tick = 0, tick+1
		}
	}
	b.StopTimer()
	if ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N); ns > 0 {
		b.ReportMetric(1e9/(ns*50), "streams/core")
	}
	st, _ := ds[0].MarshalBinary()
	b.ReportMetric(float64(len(st)), "state_bytes")
}
