package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/bus"
	"vigil/internal/event"
	"vigil/internal/store"
)

// EventWriter is what the projector needs from the store.
type EventWriter interface {
	ApplyEvents(ctx context.Context, evs []event.Event) (int, error)
	OffDutyDevices(ctx context.Context, deviceIDs []string) (map[string]bool, error)
}

// applyLocationPolicy keeps positions the location policy forbids out of
// a batch: an off-duty worker's position reports are dropped entirely and
// other events lose their position — except alarms (SOS, duress, fall),
// which open an alert and so are on duty by definition.
func applyLocationPolicy(evs []event.Event, off map[string]bool) (kept []event.Event, dropped int) {
	if len(off) == 0 {
		return evs, 0
	}
	kept = evs[:0:0]
	for _, e := range evs {
		if off[e.DeviceID] && !e.IsAlarm() {
			if e.Type == event.TypePosition {
				dropped++
				continue
			}
			e.Position = nil
		}
		kept = append(kept, e)
	}
	return kept, dropped
}

// offDuty asks the store which of a batch's devices are off duty.
func offDuty(ctx context.Context, st EventWriter, evs []event.Event) (map[string]bool, error) {
	seen := make(map[string]bool, 16)
	var ids []string
	for i := range evs {
		if evs[i].Position != nil && !seen[evs[i].DeviceID] {
			seen[evs[i].DeviceID] = true
			ids = append(ids, evs[i].DeviceID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return st.OffDutyDevices(ctx, ids)
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
	deferred  prometheus.Counter
	offDuty   prometheus.Counter
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
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_projector_deferred_total", Help: "Bus messages in an encoding this version cannot read, left for redelivery.",
		}),
	}
	p.offDuty = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_projector_positions_not_stored_total", Help: "Position reports of off-duty workers not stored (location policy on_duty).",
	})
	reg.MustRegister(p.batches, p.projected, p.dups, p.poison, p.deferred, p.offDuty)
	return p
}

// decodeMsgs reads the events of a batch of bus messages, as every consumer
// of the events stream must: a message in an encoding this version cannot
// read (a newer version wrote it during a rolling upgrade) is left for
// redelivery a minute later, never dropped (deferred counts them); a corrupt
// message of our own encoding is poison, returned by index to be
// terminated; an event that does not decode inside a good message is
// skipped (badEvents). Each case is logged here.
func decodeMsgs(msgs []bus.Msg, log *slog.Logger) (evs []event.Event, poison []int, deferred, badEvents int) {
	evs = make([]event.Event, 0, len(msgs)*4)
	for i := range msgs {
		m := &msgs[i]
		if m.Encoding != busEncoding {
			log.Warn("bus message in an encoding this version cannot read; left for redelivery", "subject", m.Subject, "encoding", m.Encoding)
			deferred++
			m.Later(time.Minute)
			continue
		}
		batch, bad, err := decodeBatch(m.Data)
		if err != nil {
			log.Error("undecodable message on the bus; terminating it", "subject", m.Subject, "err", err)
			poison = append(poison, i)
			continue
		}
		for _, e := range bad {
			log.Error("undecodable event in a bus message; skipped", "subject", m.Subject, "err", e)
			badEvents++
		}
		evs = append(evs, batch...)
	}
	return evs, poison, deferred, badEvents
}

// handle is a bus.BatchHandler. Each bus message is a batch of events
// (see publisher); all the events of all the messages handed over go to the
// store in one transaction.
func (p *projector) handle(ctx context.Context, msgs []bus.Msg) ([]int, error) {
	evs, poison, deferred, badEvents := decodeMsgs(msgs, p.log)
	p.deferred.Add(float64(deferred))
	p.poison.Add(float64(badEvents))
	if len(evs) == 0 {
		p.poison.Add(float64(len(poison)))
		return poison, nil
	}
	off, err := offDuty(ctx, p.st, evs)
	if err != nil {
		return nil, fmt.Errorf("project: location policy: %w", err)
	}
	evs, dropped := applyLocationPolicy(evs, off)
	p.offDuty.Add(float64(dropped))
	if len(evs) == 0 {
		p.poison.Add(float64(len(poison)))
		return poison, nil
	}
	n, err := p.st.ApplyEvents(ctx, evs)
	if errors.Is(err, store.ErrNotFound) {
		// An unknown device (deleted after its events were accepted) must
		// not block everyone else's events: apply one by one and drop
		// only the events that cannot be stored.
		n, err = 0, nil
		for j := range evs {
			k, e := p.st.ApplyEvents(ctx, evs[j:j+1])
			if errors.Is(e, store.ErrNotFound) {
				p.log.Error("event of unknown device dropped", "device_id", evs[j].DeviceID)
				p.poison.Inc()
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
