package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/bus"
	"vigil/internal/event"
	"vigil/internal/store"
)

// publisher adapts the bus to the gateways' Publisher interfaces.
//
// Alarms (SOS, duress, fall) are also written straight to the store, whose
// commit is fsynced, before the device is acknowledged: so an acknowledged
// alarm survives a power failure whatever the JetStream sync setting. The
// projector's later write of the same event is a no-op (same key).
type publisher struct {
	b   *bus.Bus
	st  EventWriter
	log *slog.Logger
}

// PublishEvent makes one event durable in JetStream. The JetStream message id
// is the event's idempotency key, so a retry inside the duplicate window is
// stored once; the store's unique key catches any later one.
func (p publisher) PublishEvent(ctx context.Context, ev *event.Event) error {
	data, err := event.Marshal(ev)
	if err != nil {
		return err
	}
	if err := p.b.Publish(ctx, bus.Subject(ev.OrgID, ev.DeviceID), ev.Key(), data); err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	if ev.IsAlarm() {
		// The alarm is already durable against a crash in JetStream; a
		// store failure here only narrows the power-failure guarantee,
		// so it is logged, never a reason to refuse an alarm.
		if _, err := p.st.ApplyEvents(ctx, []event.Event{*ev}); err != nil {
			p.log.Error("alarm not synced to the store before ack; it stays in the stream", "device_id", ev.DeviceID, "err", err)
		}
	}
	return nil
}

// PublishEvents makes a batch durable, in order. It returns at the first
// failure; the caller reports the batch as not stored and the client resends
// all of it (the ones already stored are deduplicated).
func (p publisher) PublishEvents(ctx context.Context, evs []event.Event) error {
	for i := range evs {
		if err := p.PublishEvent(ctx, &evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// EventWriter is what the projector needs from the store.
type EventWriter interface {
	ApplyEvents(ctx context.Context, evs []event.Event) (int, error)
}

// projector turns batches of bus messages into store transactions (group
// commit: one transaction per batch, however many messages are waiting).
type projector struct {
	st  EventWriter
	log *slog.Logger

	batches   prometheus.Histogram
	projected prometheus.Counter
	dups      prometheus.Counter
	poison    prometheus.Counter
}

func newProjector(st EventWriter, log *slog.Logger, reg prometheus.Registerer) *projector {
	p := &projector{st: st, log: log,
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_projector_batch_size", Help: "Events per store transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		projected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_projector_events_total", Help: "Events newly written to the store.",
		}),
		dups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_projector_duplicates_total", Help: "Redelivered events already in the store.",
		}),
		poison: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_projector_poison_total", Help: "Bus messages that can never be stored (bad encoding, unknown device).",
		}),
	}
	reg.MustRegister(p.batches, p.projected, p.dups, p.poison)
	return p
}

// handle is a bus.BatchHandler.
func (p *projector) handle(ctx context.Context, msgs []bus.Msg) ([]int, error) {
	evs := make([]event.Event, 0, len(msgs))
	idx := make([]int, 0, len(msgs))
	var poison []int
	for i, m := range msgs {
		ev, err := event.Unmarshal(m.Data)
		if err != nil {
			p.log.Error("undecodable event on the bus; terminating it", "subject", m.Subject, "err", err)
			poison = append(poison, i)
			continue
		}
		evs = append(evs, ev)
		idx = append(idx, i)
	}
	if len(evs) == 0 {
		p.poison.Add(float64(len(poison)))
		return poison, nil
	}
	n, err := p.st.ApplyEvents(ctx, evs)
	if errors.Is(err, store.ErrNotFound) {
		// An unknown device (deleted after its events were accepted) must
		// not block everyone else's events: apply one by one and terminate
		// only the ones that cannot be stored.
		n, err = 0, nil
		for j := range evs {
			k, e := p.st.ApplyEvents(ctx, evs[j:j+1])
			if errors.Is(e, store.ErrNotFound) {
				p.log.Error("event of unknown device; terminating it", "device_id", evs[j].DeviceID)
				poison = append(poison, idx[j])
				continue
			}
			if e != nil {
				return nil, fmt.Errorf("project event: %w", e)
			}
			n += k
		}
	} else if err != nil {
		return nil, fmt.Errorf("project %d events: %w", len(evs), err)
	}
	p.batches.Observe(float64(len(evs)))
	p.projected.Add(float64(n))
	p.dups.Add(float64(len(evs) - n))
	p.poison.Add(float64(len(poison)))
	return poison, nil
}
