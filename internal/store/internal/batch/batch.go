// Package batch holds the dialect-free part of ApplyEvents: removing
// duplicates inside a batch, a deterministic insertion order, and folding
// the newly inserted events into one state change per device. Both SQL
// implementations use it so the projection rules live in one place.
//
// It imports only the standard library and internal/event; no SQL.
package batch

import (
	"cmp"
	"slices"
	"time"

	"vigil/internal/event"
)

// Unique returns the events of evs with duplicates (same DeviceID and
// MsgID) removed, keeping the first occurrence and the batch's order (the
// order the store assigns sequence numbers in), and the distinct device
// ids, sorted (the order device rows are locked in, so that concurrent
// batches cannot deadlock).
func Unique(evs []event.Event) (out []*event.Event, devices []string) {
	out = make([]*event.Event, 0, len(evs))
	type key struct{ dev, msg string }
	seen := make(map[key]struct{}, len(evs))
	devs := make(map[string]struct{})
	for i := range evs {
		e := &evs[i]
		k := key{e.DeviceID, e.MsgID}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, e)
		if _, ok := devs[e.DeviceID]; !ok {
			devs[e.DeviceID] = struct{}{}
			devices = append(devices, e.DeviceID)
		}
	}
	slices.Sort(devices)
	return out, devices
}

// Delta is what a batch's new events change on one device. The store
// applies it so state only moves forward: LastSeen is a maximum, and
// Position and Battery replace the stored ones only when their device time
// is strictly newer.
type Delta struct {
	DeviceID     string
	Count        int64     // new events
	LastSeen     time.Time // max ReceivedAt
	Position     *event.Position
	PositionTime time.Time // device time of Position; zero when Position is nil
	Battery      *event.Battery
	BatteryTime  time.Time
}

// Deltas folds newly inserted events into one Delta per device, sorted by
// device id (the order rows are locked in). Among events of equal device
// time the first in the batch wins, as a later batch with an equal time
// does not replace stored state either.
func Deltas(inserted []*event.Event) []Delta {
	var out []Delta
	idx := make(map[string]int)
	for _, e := range inserted {
		i, ok := idx[e.DeviceID]
		if !ok {
			i = len(out)
			idx[e.DeviceID] = i
			out = append(out, Delta{DeviceID: e.DeviceID})
		}
		d := &out[i]
		d.Count++
		if e.ReceivedAt.After(d.LastSeen) {
			d.LastSeen = e.ReceivedAt
		}
		if e.Position != nil && (d.Position == nil || e.DeviceTime.After(d.PositionTime)) {
			d.Position, d.PositionTime = e.Position, e.DeviceTime
		}
		if e.Battery != nil && (d.Battery == nil || e.DeviceTime.After(d.BatteryTime)) {
			d.Battery, d.BatteryTime = e.Battery, e.DeviceTime
		}
	}
	slices.SortFunc(out, func(a, b Delta) int { return cmp.Compare(a.DeviceID, b.DeviceID) })
	return out
}

// Split separates position reports (events of type position), which the
// store keeps once as position rows keyed by (device id, device time, msg
// id), from the other events, which go to the event log. Both keep the
// batch's order.
func Split(uniq []*event.Event) (log, positions []*event.Event) {
	for _, e := range uniq {
		if e.Type == event.TypePosition {
			positions = append(positions, e)
		} else {
			log = append(log, e)
		}
	}
	return log, positions
}

// Inserted returns the events of uniq that are in isNew, in uniq's order
// (Deltas' tie-break depends on it).
func Inserted(uniq []*event.Event, isNew map[*event.Event]bool) []*event.Event {
	out := make([]*event.Event, 0, len(isNew))
	for _, e := range uniq {
		if isNew[e] {
			out = append(out, e)
		}
	}
	return out
}
