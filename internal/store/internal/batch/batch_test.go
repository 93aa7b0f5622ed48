package batch

import (
	"slices"
	"testing"
	"time"

	"vigil/internal/event"
)

func TestUniqueAndDeltas(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	e := func(dev, msg string, dt, rt time.Duration, pos, bat bool) event.Event {
		x := event.Event{DeviceID: dev, MsgID: msg, DeviceTime: t0.Add(dt), ReceivedAt: t0.Add(rt)}
		if pos {
			x.Position = &event.Position{Lat: float64(dt), Lon: 1, AccuracyM: 1}
		}
		if bat {
			x.Battery = &event.Battery{Percent: int(dt / time.Second)}
		}
		return x
	}
	evs := []event.Event{
		e("b", "1", 5*time.Second, 9*time.Second, true, false),
		e("a", "1", 1*time.Second, 2*time.Second, false, true),
		e("b", "1", 50*time.Second, 50*time.Second, true, false), // duplicate: dropped
		e("b", "2", 5*time.Second, 3*time.Second, true, true),    // equal time: first wins
		e("a", "2", 3*time.Second, 1*time.Second, true, false),
	}
	uniq, devs := Unique(evs)
	var keys []string
	for _, u := range uniq {
		keys = append(keys, u.Key())
	}
	if want := []string{"b/1", "a/1", "b/2", "a/2"}; !slices.Equal(keys, want) {
		t.Errorf("Unique keys = %v, want %v (batch order, first occurrence)", keys, want)
	}
	if want := []string{"a", "b"}; !slices.Equal(devs, want) {
		t.Errorf("devices = %v, want %v", devs, want)
	}
	ds := Deltas(uniq)
	if len(ds) != 2 || ds[0].DeviceID != "a" || ds[1].DeviceID != "b" {
		t.Fatalf("Deltas = %+v, want a then b", ds)
	}
	a, b := ds[0], ds[1]
	if a.Count != 2 || !a.LastSeen.Equal(t0.Add(2*time.Second)) || !a.PositionTime.Equal(t0.Add(3*time.Second)) ||
		a.Battery == nil || a.Battery.Percent != 1 {
		t.Errorf("delta a = %+v", a)
	}
	if b.Count != 2 || !b.LastSeen.Equal(t0.Add(9*time.Second)) || b.Position != uniq[0].Position ||
		b.Battery == nil || !b.BatteryTime.Equal(t0.Add(5*time.Second)) {
		t.Errorf("delta b = %+v", b)
	}
}
