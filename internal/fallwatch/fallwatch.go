// Package fallwatch runs the fall detector (internal/fall) over devices'
// motion events: one detector per device, fed every sample of every motion
// window in device time, its state saved after each batch so that a
// restart resumes where it stopped. A detected fall becomes a fall event
// (source "detector") handed to the same publisher the gateways use, so it
// takes the path of a fall the device reports itself: stored before
// acknowledgement, then to the alert engine with its cancel window.
//
// It imports internal/fall and internal/event only; it must not import the
// bus, the store, the gateways or internal/app (its consumers declare the
// adapters: StateStore, Publisher).
package fallwatch

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"vigil/internal/event"
	"vigil/internal/fall"
)

// StateStore keeps each device's detector state between batches and across
// restarts. GetState returns ErrNoState when a device has none; PutStates
// saves a batch's states (by device id) all or none, in one transaction.
type StateStore interface {
	GetState(ctx context.Context, deviceID string) (string, error)
	PutStates(ctx context.Context, states map[string]string) error
}

// ErrNoState is what StateStore.GetState returns for a device without
// saved state.
var ErrNoState = errors.New("fallwatch: no saved state")

// Publisher makes an event durable (the ingest publisher).
type Publisher interface {
	PublishEvent(ctx context.Context, ev *event.Event) error
}

// Config wires a Watcher.
type Config struct {
	Model  *fall.Model
	States StateStore
	Pub    Publisher
	Now    func() time.Time
	Log    *slog.Logger
	// Sensitivity returns the tuning (fall.Config.Sensitivity) of the
	// person wearing a device; nil uses the model's operating point for
	// everyone. It is asked when a device's detector starts and again
	// every SensitivityEvery while it runs, so a change reaches a running
	// detector within that time.
	Sensitivity      func(ctx context.Context, deviceID string) (float64, error)
	SensitivityEvery time.Duration // default 1 minute
}

// Watcher is safe for use by one goroutine at a time (the bus consumer).
type Watcher struct {
	cfg  Config
	dets map[string]*watched
}

type watched struct {
	d       *fall.Detector
	checked time.Time // when Sensitivity was last asked
}

// New returns a Watcher.
func New(cfg Config) (*Watcher, error) {
	if cfg.Model == nil || cfg.States == nil || cfg.Pub == nil || cfg.Now == nil || cfg.Log == nil {
		return nil, errors.New("fallwatch: Model, States, Pub, Now and Log are required")
	}
	if cfg.SensitivityEvery <= 0 {
		cfg.SensitivityEvery = time.Minute
	}
	return &Watcher{cfg: cfg, dets: make(map[string]*watched)}, nil
}

// Detected is what Handle found in a batch.
type Detected struct {
	Falls      []event.Event // published
	Suppressed int           // raises inside a device's refractory time
}

// Handle feeds the motion events of evs (other events are ignored) to
// their devices' detectors in order, publishes a fall event for every
// fall found, and saves the state of every device it touched. An error
// means the batch must be redelivered: a detector ignores samples older
// than it has seen, and a fall's message id is derived from its impact
// time, so a redelivered batch neither repeats a detection nor stores one
// twice.
func (w *Watcher) Handle(ctx context.Context, evs []event.Event) (out Detected, err error) {
	touched := make(map[string]*fall.Detector)
	defer func() {
		if err != nil {
			// The batch will come again: forget what it did to the
			// detectors, so that they resume from the last saved state
			// instead of ignoring its samples as already seen.
			for id := range touched {
				delete(w.dets, id)
			}
		}
	}()
	for i := range evs {
		e := &evs[i]
		m := e.Motion
		if e.Type != event.TypeMotion || m == nil || m.RateHz <= 0 {
			continue
		}
		d, err := w.detector(ctx, e.DeviceID)
		if err != nil {
			return out, err
		}
		touched[e.DeviceID] = d
		t0 := e.DeviceTime.UnixNano()
		step := 1e9 / m.RateHz
		for j, a := range m.Accel {
			if len(a) != 3 {
				continue
			}
			s := fall.Sample{T: t0 + int64(float64(j)*step), Accel: [3]float32{float32(a[0]), float32(a[1]), float32(a[2])}}
			if j < len(m.Gyro) && len(m.Gyro[j]) == 3 {
				g := m.Gyro[j]
				s.Gyro = [3]float32{float32(g[0]), float32(g[1]), float32(g[2])}
			}
			dec, ok := d.Push(s)
			if !ok {
				continue
			}
			if dec.Suppressed {
				out.Suppressed++
			}
			if !dec.Fall {
				continue
			}
			f := event.Event{
				V: event.SchemaVersion, OrgID: e.OrgID, DeviceID: e.DeviceID,
				MsgID: "fall-detector:" + strconv.FormatInt(dec.ImpactT, 36), Type: event.TypeFall,
				DeviceTime: time.Unix(0, dec.ImpactT).UTC(), ReceivedAt: w.cfg.Now().UTC(),
				Source: event.SourceDetector, Late: e.Late,
				Fall: &event.Fall{Confidence: dec.Probability},
			}
			if err := w.cfg.Pub.PublishEvent(ctx, &f); err != nil {
				return out, fmt.Errorf("fallwatch: publish fall of %s: %w", e.DeviceID, err)
			}
			w.cfg.Log.Info("fall detected", "device_id", e.DeviceID, "probability", dec.Probability, "peak_g", dec.PeakG)
			out.Falls = append(out.Falls, f)
		}
	}
	states := make(map[string]string, len(touched))
	for id, d := range touched {
		b, err := d.MarshalBinary()
		if err != nil {
			return out, fmt.Errorf("fallwatch: save state of %s: %w", id, err)
		}
		states[id] = base64.StdEncoding.EncodeToString(b)
	}
	if err := w.cfg.States.PutStates(ctx, states); err != nil {
		return out, fmt.Errorf("fallwatch: save %d detector states: %w", len(states), err)
	}
	return out, nil
}

// detector returns a device's detector, resuming its saved state on first
// use after a start. A saved state that cannot be read (another model's
// geometry, corruption) is logged and replaced by a fresh detector: at
// most the few seconds of motion it held are lost. The wearer's
// sensitivity is (re)applied when due.
func (w *Watcher) detector(ctx context.Context, id string) (*fall.Detector, error) {
	now := w.cfg.Now()
	if x, ok := w.dets[id]; ok {
		if w.cfg.Sensitivity != nil && now.Sub(x.checked) >= w.cfg.SensitivityEvery {
			w.applySensitivity(ctx, id, x, now)
		}
		return x.d, nil
	}
	x := &watched{d: fall.New(w.cfg.Model, fall.Config{})}
	saved, err := w.cfg.States.GetState(ctx, id)
	switch {
	case errors.Is(err, ErrNoState):
	case err != nil:
		return nil, fmt.Errorf("fallwatch: load state of %s: %w", id, err)
	default:
		b, derr := base64.StdEncoding.DecodeString(saved)
		if derr == nil {
			derr = x.d.UnmarshalBinary(b)
		}
		if derr != nil {
			w.cfg.Log.Warn("saved fall-detector state unusable; starting afresh", "device_id", id, "err", derr)
			x.d = fall.New(w.cfg.Model, fall.Config{})
		}
	}
	if w.cfg.Sensitivity != nil {
		w.applySensitivity(ctx, id, x, now)
	}
	w.dets[id] = x
	return x.d, nil
}

// applySensitivity asks for the wearer's sensitivity; on error the
// detector keeps the value it has (a detector never stops for it).
func (w *Watcher) applySensitivity(ctx context.Context, id string, x *watched, now time.Time) {
	x.checked = now
	v, err := w.cfg.Sensitivity(ctx, id)
	if err != nil {
		w.cfg.Log.Warn("fall sensitivity unavailable; keeping the current one", "device_id", id, "err", err)
		return
	}
	x.d.SetSensitivity(v)
}
