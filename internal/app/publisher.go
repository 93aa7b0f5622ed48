package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/bus"
	"vigil/internal/event"
)

// partitions is how many subjects the EVENTS stream is split into. A
// device always maps to the same partition, so its events stay in order;
// processors can later share the work out by partition.
const partitions = 8

// maxBusBatch bounds the events in one bus message, and maxBusBytes its
// size: NATS refuses messages over its max_payload (1 MiB by default, also
// on an external server). One event is at most 256 KiB of device JSON, so a
// single event always fits.
const (
	maxBusBatch = 256
	maxBusBytes = 768 << 10
)

// busEncoding names the format of the bus messages the publisher writes: a
// JSON array of event.Event (schema event.SchemaVersion). A consumer that
// meets another encoding leaves the message for a version that reads it.
const busEncoding = "events-json-v1"

// partitionOf maps a device to its partition.
func partitionOf(deviceID string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(deviceID))
	return int(h.Sum32() % partitions)
}

// errPublisherStopped is returned to callers waiting when the app stops.
var errPublisherStopped = errors.New("publisher stopped")

type pubReq struct {
	evs  []event.Event
	data []byte // the events encoded, comma-separated
	size int
	done chan error
}

// publisher adapts the bus to the gateways' Publisher interfaces with group
// commit: the events that many devices send while one JetStream publish is
// in flight travel together in the next bus message of their partition,
// and each device is released (PUBACK, 200) when JetStream has stored the
// message holding its event. Nothing is acknowledged before that.
//
// Alarms (SOS, duress, fall) are also written straight to the store, whose
// commit is fsynced, before the device is acknowledged: so an acknowledged
// alarm survives a power failure whatever the JetStream sync setting. The
// projector's later write of the same event is a no-op (same key).
type publisher struct {
	b       *bus.Bus
	st      EventWriter
	log     *slog.Logger
	parts   [partitions]chan pubReq
	motion  [partitions]chan pubReq // motion windows, on their own subjects
	urgent  [partitions]chan pubReq // buttons, falls, alarms: on their own subjects
	stopped chan struct{}
	sizes   prometheus.Histogram
	fixes   [partitions]fixCache // each device's newest fix published here
}

// fixCache is the newest position fix of each device of one partition
// published through this instance.
type fixCache struct {
	mu sync.Mutex
	m  map[string]event.Position
}

// alarmFixAge is how old a device's last fix may be, against the alarm's
// own time, to go out with an alarm that carries no position.
const alarmFixAge = 5 * time.Minute

func newPublisher(b *bus.Bus, st EventWriter, log *slog.Logger, reg prometheus.Registerer) *publisher {
	p := &publisher{b: b, st: st, log: log, stopped: make(chan struct{}),
		sizes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_bus_publish_batch_size", Help: "Events per JetStream message (group commit on ingest).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
	}
	for i := range p.parts {
		p.fixes[i].m = map[string]event.Position{}
		p.parts[i] = make(chan pubReq, 4096)
		p.motion[i] = make(chan pubReq, 1024)
		p.urgent[i] = make(chan pubReq, 1024)
	}
	reg.MustRegister(p.sizes)
	return p
}

// run publishes until ctx is done: one goroutine per partition, owned here.
func (p *publisher) run(ctx context.Context) {
	defer close(p.stopped)
	var wg sync.WaitGroup
	for k := range p.parts {
		wg.Add(3)
		go func() {
			defer wg.Done()
			p.partitionLoop(ctx, p.parts[k], bus.PartitionSubject(k))
		}()
		go func() {
			defer wg.Done()
			p.partitionLoop(ctx, p.urgent[k], bus.UrgentSubject(k))
		}()
		go func() {
			defer wg.Done()
			p.partitionLoop(ctx, p.motion[k], bus.MotionSubject(k))
		}()
	}
	wg.Wait()
}

func (p *publisher) partitionLoop(ctx context.Context, ch chan pubReq, subject string) {
	var held *pubReq // taken from ch but did not fit the last message
	for {
		var first pubReq
		if held != nil {
			first, held = *held, nil
		} else {
			select {
			case <-ctx.Done():
				return
			case first = <-ch:
			}
		}
		reqs := []pubReq{first}
		n, size := len(first.evs), first.size
	fill:
		for n < maxBusBatch {
			select {
			case r := <-ch:
				if n+len(r.evs) > maxBusBatch || size+r.size > maxBusBytes {
					held = &r
					break fill
				}
				reqs = append(reqs, r)
				n, size = n+len(r.evs), size+r.size
			default:
				break fill
			}
		}
		err := p.b.Publish(ctx, subject, "", busEncoding, encodeBatch(reqs, size))
		if err == nil {
			p.sizes.Observe(float64(n))
		}
		for _, r := range reqs {
			r.done <- err
		}
	}
}

// encodeBatch joins the requests' encoded events into one JSON array.
func encodeBatch(reqs []pubReq, size int) []byte {
	b := make([]byte, 0, size+2)
	b = append(b, '[')
	for i, r := range reqs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r.data...)
	}
	return append(b, ']')
}

// decodeBatch reads a bus message written by encodeBatch. An event that
// does not decode is reported in bad and skipped; the others are kept.
func decodeBatch(b []byte) (evs []event.Event, bad []error, err error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, nil, fmt.Errorf("decode event batch: %w", err)
	}
	evs = make([]event.Event, 0, len(raws))
	for _, r := range raws {
		ev, err := event.Unmarshal(r)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		evs = append(evs, ev)
	}
	return evs, bad, nil
}

// publish hands events of one device to its partition and waits until they
// are durable. Motion windows go to the partition's motion subject, urgent
// events (buttons, falls, alarms) to its urgent subject, the rest (position
// reports, heartbeats, battery) to the partition subject. Each lane keeps
// the device's order; across lanes an urgent event may overtake a position
// report, which the safety engine accepts (it orders by device time).
func (p *publisher) publish(ctx context.Context, evs []event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	part := partitionOf(evs[0].DeviceID)
	p.withLastFix(part, evs)
	var lanes [3][]event.Event // motion, urgent, other
	for i := range evs {
		switch {
		case evs[i].Type == event.TypeMotion:
			lanes[0] = append(lanes[0], evs[i])
		case isUrgent(&evs[i]):
			lanes[1] = append(lanes[1], evs[i])
		default:
			lanes[2] = append(lanes[2], evs[i])
		}
	}
	chans := [3]chan pubReq{p.motion[part], p.urgent[part], p.parts[part]}
	for l, batch := range lanes {
		if len(batch) == 0 {
			continue
		}
		if err := p.publishTo(ctx, chans[l], batch); err != nil {
			return err
		}
	}
	return nil
}

// isUrgent says whether an event goes on the urgent lane: every button
// (an SOS and the cancel after it stay in order), falls and alarms.
func isUrgent(ev *event.Event) bool {
	return ev.Type == event.TypeButton || ev.Type == event.TypeFall || ev.Type == event.TypeAlarm
}

func (p *publisher) publishTo(ctx context.Context, ch chan pubReq, evs []event.Event) error {
	var data []byte
	for i := range evs {
		b, err := event.Marshal(&evs[i])
		if err != nil {
			return fmt.Errorf("publish events: %w", err)
		}
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, b...)
	}
	if len(data) > maxBusBytes {
		return fmt.Errorf("publish events: %d bytes encoded, more than one bus message holds", len(data))
	}
	r := pubReq{evs: evs, data: data, size: len(data) + 1, done: make(chan error, 1)}
	select {
	case ch <- r:
	case <-ctx.Done():
		return fmt.Errorf("publish events: %w", ctx.Err())
	case <-p.stopped:
		return fmt.Errorf("publish events: %w", errPublisherStopped)
	}
	select {
	case err := <-r.done:
		if err != nil {
			return fmt.Errorf("publish events: %w", err)
		}
	case <-ctx.Done():
		return fmt.Errorf("publish events: %w", ctx.Err())
	case <-p.stopped:
		return fmt.Errorf("publish events: %w", errPublisherStopped)
	}
	for i := range evs {
		if !evs[i].IsAlarm() {
			continue
		}
		// The alarm is already durable against a crash in JetStream; a
		// store failure here only narrows the power-failure guarantee,
		// so it is logged, never a reason to refuse an alarm.
		if _, err := p.st.ApplyEvents(ctx, evs[i:i+1]); err != nil {
			p.log.Error("alarm not synced to the store before ack; it stays in the stream", "device_id", evs[i].DeviceID, "err", err)
		}
	}
	return nil
}

// PublishEvent makes one event durable (mqttgw.Publisher).
func (p *publisher) PublishEvent(ctx context.Context, ev *event.Event) error {
	return p.publish(ctx, []event.Event{*ev})
}

// PublishEvents makes a batch of one device's events durable, in as few
// bus messages as fit (httpgw.Publisher). On error the client resends all
// of them; the store drops the ones it already has.
func (p *publisher) PublishEvents(ctx context.Context, evs []event.Event) error {
	for len(evs) > 0 {
		n, size := 0, 0
		for n < len(evs) && n < maxBusBatch {
			b, err := event.Marshal(&evs[n])
			if err != nil {
				return fmt.Errorf("publish events: %w", err)
			}
			if n > 0 && size+len(b)+1 > maxBusBytes {
				break
			}
			size += len(b) + 1
			n++
		}
		if err := p.publish(ctx, evs[:n]); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

// withLastFix remembers each device's newest position fix and gives an
// alarm that carries none (an SOS from a pendant that sends positions
// separately) the device's last fix, when it is at most alarmFixAge older
// than the alarm: the alarm travels on the urgent lane and may overtake
// the position report sent just before it, so without this its alert
// could show an older place. The fix keeps its own fix_time, so its age
// stays visible. evs are one device's, in the order it sent them.
func (p *publisher) withLastFix(part int, evs []event.Event) {
	fc := &p.fixes[part]
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for i := range evs {
		ev := &evs[i]
		if pos := ev.Position; pos != nil {
			at := pos.FixTime
			if at.IsZero() {
				at = ev.DeviceTime
			}
			if old, ok := fc.m[ev.DeviceID]; !ok || !at.Before(old.FixTime) {
				c := *pos
				c.FixTime = at
				fc.m[ev.DeviceID] = c
			}
			continue
		}
		if !ev.IsAlarm() {
			continue
		}
		if last, ok := fc.m[ev.DeviceID]; ok && !last.FixTime.After(ev.DeviceTime.Add(time.Minute)) && ev.DeviceTime.Sub(last.FixTime) <= alarmFixAge {
			c := last
			ev.Position = &c
		}
	}
}
