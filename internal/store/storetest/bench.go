package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"vigil/internal/event"
	"vigil/internal/store"
)

// BenchSizes are the batch sizes the group-commit benchmarks use.
var BenchSizes = []int{1, 100, 1000}

// BenchDevices is how many devices benchmark events spread over.
const BenchDevices = 100

// BenchSeed creates org "bench" and devices bench-000 … bench-099.
func BenchSeed(tb testing.TB, s store.Store) {
	tb.Helper()
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(s.CreateOrg(ctx, store.Org{ID: "bench", Name: "Bench", CreatedAt: t0}))
	for i := range BenchDevices {
		must(s.CreateDevice(ctx, store.Device{ID: fmt.Sprintf("bench-%03d", i), OrgID: "bench", Name: "d", CreatedAt: t0}))
	}
}

// BenchEvents returns n position events with distinct keys, numbered from
// start, round-robin over the BenchSeed devices: each one is a position
// report (a positions row since schema 3) and moves its device's state.
func BenchEvents(start, n int) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		k := start + i
		dt := t0.Add(time.Duration(k) * time.Second)
		out[i] = event.Event{
			V: event.SchemaVersion, OrgID: "bench", DeviceID: fmt.Sprintf("bench-%03d", k%BenchDevices),
			MsgID: fmt.Sprintf("m%09d", k), Type: event.TypePosition, DeviceTime: dt, ReceivedAt: dt.Add(300 * time.Millisecond),
			Source: event.SourceMQTT,
			Position: &event.Position{Lat: 51.5 + float64(k%1000)/1e4, Lon: -0.12, AccuracyM: 6.5,
				SpeedMPS: ptr(1.2), FixTime: dt.Add(-time.Second)},
		}
	}
	return out
}

// ReportRows reports rows/s for rows rows written in the benchmark's time.
func ReportRows(b *testing.B, rows int) {
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkApplyEvents measures group commit: one ApplyEvents call per
// batch of each of BenchSizes, new events only. open must return a fresh,
// empty, migrated store.
func BenchmarkApplyEvents(b *testing.B, open func(b *testing.B) store.Store) {
	for _, size := range BenchSizes {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := open(b)
			defer s.Close()
			BenchSeed(b, s)
			evs := BenchEvents(0, b.N*size)
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				n, err := s.ApplyEvents(ctx, evs[i*size:(i+1)*size])
				if err != nil {
					b.Fatal(err)
				}
				if n != size {
					b.Fatalf("inserted %d, want %d", n, size)
				}
			}
			b.StopTimer()
			ReportRows(b, b.N*size)
		})
	}
}
