package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/bus"
	"vigil/internal/fall"
	"vigil/internal/fallwatch"
	"vigil/internal/safety"
	"vigil/internal/store"
)

// fallStates keeps each device's fall-detector state in the store's meta
// table (fallwatch.StateStore).
type fallStates struct{ st store.Store }

func fallStateKey(deviceID string) string { return "fall-state/" + deviceID }

func (f fallStates) GetState(ctx context.Context, deviceID string) (string, error) {
	v, err := f.st.GetMeta(ctx, fallStateKey(deviceID))
	if errors.Is(err, store.ErrNotFound) {
		return "", fallwatch.ErrNoState
	}
	return v, err
}

func (f fallStates) PutStates(ctx context.Context, states map[string]string) error {
	kvs := make(map[string]string, len(states))
	for id, s := range states {
		kvs[fallStateKey(id)] = s
	}
	return f.st.PutMetas(ctx, kvs)
}

// fallConsumer feeds the motion subjects of the bus to the fall watcher.
type fallConsumer struct {
	w *fallwatch.Watcher
	// motion, when set, also gets every window (the safety engine's
	// no-motion rule).
	motion   func(ctx context.Context, ms []safety.Motion) error
	log      *slog.Logger
	detected prometheus.Counter
	windows  prometheus.Counter
}

func newFallConsumer(w *fallwatch.Watcher, log *slog.Logger, reg prometheus.Registerer) *fallConsumer {
	c := &fallConsumer{w: w, log: log,
		detected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_falls_detected_total", Help: "Falls the server's detector found in motion windows.",
		}),
		windows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_fall_motion_windows_total", Help: "Motion windows run through the fall detector.",
		}),
	}
	reg.MustRegister(c.detected, c.windows)
	return c
}

// handle is a bus.BatchHandler on bus.MotionFilter. An error (a fall that
// could not be published, state that could not be saved) redelivers the
// batch; fallwatch makes that safe.
func (c *fallConsumer) handle(ctx context.Context, msgs []bus.Msg) ([]int, error) {
	evs, poison, _, _ := decodeMsgs(msgs, c.log)
	d, err := c.w.Handle(ctx, evs)
	if err != nil {
		return nil, fmt.Errorf("fall detection: %w", err)
	}
	if c.motion != nil {
		ms := make([]safety.Motion, 0, len(evs))
		for i := range evs {
			e := &evs[i]
			if e.Motion == nil || e.Motion.RateHz <= 0 {
				continue
			}
			end := e.DeviceTime.Add(time.Duration(float64(len(e.Motion.Accel)) / e.Motion.RateHz * float64(time.Second)))
			ms = append(ms, safety.Motion{DeviceID: e.DeviceID, End: end, Moving: safety.Moving(e.Motion)})
		}
		if err := c.motion(ctx, ms); err != nil {
			return nil, fmt.Errorf("no-motion: %w", err)
		}
	}
	c.windows.Add(float64(len(evs)))
	c.detected.Add(float64(len(d.Falls)))
	return poison, nil
}

// setupFalls builds the fall watcher on the embedded default model.
func (a *App) setupFalls() error {
	m, err := fall.DefaultModel()
	if err != nil {
		return fmt.Errorf("fall detector: %w", err)
	}
	w, err := fallwatch.New(fallwatch.Config{
		Model: m, States: fallStates{a.store}, Pub: a.pub, Now: a.deps.Clock.Now,
		Log: a.log.With("component", "falls"), Sensitivity: fallSensitivity(a.store),
	})
	if err != nil {
		return err
	}
	a.falls = newFallConsumer(w, a.log.With("component", "falls"), a.reg)
	return nil
}

// fallSensitivity looks up the fall sensitivity of the person a device is
// assigned to; an unassigned device uses the model's operating point (0).
func fallSensitivity(st store.Store) func(ctx context.Context, deviceID string) (float64, error) {
	return func(ctx context.Context, deviceID string) (float64, error) {
		d, err := st.GetDevice(ctx, deviceID)
		if err != nil {
			return 0, err
		}
		if d.PersonID == "" {
			return 0, nil
		}
		p, err := st.GetPerson(ctx, d.PersonID)
		if err != nil {
			return 0, err
		}
		return p.FallSensitivity, nil
	}
}
