package fallwatch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"vigil/internal/event"
)

// BenchmarkHandle10k: 10,000 devices each streaming 50 Hz motion in 2 s
// windows (real recordings, each device at its own offset), handed to the
// watcher in bus-sized batches of 64 windows, with every touched device's
// state saved per batch (in memory here). One op is one window, i.e. 100
// samples; the ns/sample metric is comparable with internal/fall's
// BenchmarkPush10k.
func BenchmarkHandle10k(b *testing.B) {
	const devices = 10000
	recs := [][]event.Event{windows(b, fallRec, 50), windows(b, adlRec, 50)}
	w := newWatcher(b, memStates{}, &capture{})
	ctx := context.Background()
	batch := make([]event.Event, 0, 64)
	b.ResetTimer()
	for i := range b.N {
		dev := i % devices
		round := i / devices
		rec := recs[dev%2]
		k := (round + dev) % len(rec)
		e := rec[k]
		e.DeviceID = fmt.Sprintf("d%05d", dev)
		e.DeviceTime = t0.Add(time.Duration(round) * 2 * time.Second)
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == b.N-1 {
			if _, err := w.Handle(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/sample")
	b.ReportMetric(float64(b.N)*2/b.Elapsed().Seconds(), "streams/core")
}
