package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/bus"
	"vigil/internal/event"
)

// partitions is how many subjects the EVENTS stream is split into. A
// device always maps to the same partition, so its events stay in order;
// processors can later share the work out by partition.
const partitions = 8

// maxBusBatch bounds the events in one bus message.
const maxBusBatch = 256

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
	stopped chan struct{}
	sizes   prometheus.Histogram
}

func newPublisher(b *bus.Bus, st EventWriter, log *slog.Logger, reg prometheus.Registerer) *publisher {
	p := &publisher{b: b, st: st, log: log, stopped: make(chan struct{}),
		sizes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_bus_publish_batch_size", Help: "Events per JetStream message (group commit on ingest).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
	}
	for i := range p.parts {
		p.parts[i] = make(chan pubReq, 4096)
	}
	reg.MustRegister(p.sizes)
	return p
}

// run publishes until ctx is done: one goroutine per partition, owned here.
func (p *publisher) run(ctx context.Context) {
	defer close(p.stopped)
	var wg sync.WaitGroup
	for k := range p.parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.partitionLoop(ctx, k)
		}()
	}
	wg.Wait()
}

func (p *publisher) partitionLoop(ctx context.Context, k int) {
	ch := p.parts[k]
	subject := bus.PartitionSubject(k)
	reqs := make([]pubReq, 0, maxBusBatch)
	var buf bytes.Buffer
	for {
		reqs = reqs[:0]
		select {
		case <-ctx.Done():
			return
		case r := <-ch:
			reqs = append(reqs, r)
		}
		n := len(reqs[0].evs)
	fill:
		for n < maxBusBatch {
			select {
			case r := <-ch:
				reqs = append(reqs, r)
				n += len(r.evs)
			default:
				break fill
			}
		}
		err := encodeBatch(&buf, reqs)
		if err == nil {
			err = p.b.Publish(ctx, subject, "", buf.Bytes())
		}
		if err == nil {
			p.sizes.Observe(float64(n))
		}
		for _, r := range reqs {
			r.done <- err
		}
	}
}

// encodeBatch writes the events of reqs as one JSON array.
func encodeBatch(buf *bytes.Buffer, reqs []pubReq) error {
	buf.Reset()
	buf.WriteByte('[')
	first := true
	for _, r := range reqs {
		for i := range r.evs {
			b, err := event.Marshal(&r.evs[i])
			if err != nil {
				return err
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			buf.Write(b)
		}
	}
	buf.WriteByte(']')
	return nil
}

// decodeBatch reads a bus message written by encodeBatch.
func decodeBatch(b []byte) ([]event.Event, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, fmt.Errorf("decode event batch: %w", err)
	}
	evs := make([]event.Event, 0, len(raws))
	for _, r := range raws {
		ev, err := event.Unmarshal(r)
		if err != nil {
			return nil, fmt.Errorf("decode event batch: %w", err)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// publish hands events of one device to its partition and waits until they
// are durable.
func (p *publisher) publish(ctx context.Context, evs []event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	r := pubReq{evs: evs, done: make(chan error, 1)}
	ch := p.parts[partitionOf(evs[0].DeviceID)]
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

// PublishEvents makes a batch of one device's events durable, all in one
// bus message (httpgw.Publisher). On error the client resends all of them;
// the store drops the ones it already has.
func (p *publisher) PublishEvents(ctx context.Context, evs []event.Event) error {
	for len(evs) > maxBusBatch {
		if err := p.publish(ctx, evs[:maxBusBatch]); err != nil {
			return err
		}
		evs = evs[maxBusBatch:]
	}
	return p.publish(ctx, evs)
}
