package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/bus"
	"vigil/internal/gateway/mqttgw"
	"vigil/internal/safety"
	"vigil/internal/store"
	"vigil/internal/web"
)

// mqttCommander sends the safety engine's commands to devices over their
// MQTT commands topic; a quarantined device gets none (its flag is read
// from the store, so every instance agrees).
type mqttCommander struct {
	gw *mqttgw.Gateway
	st interface {
		GetDevice(ctx context.Context, id string) (store.Device, error)
	}
}

// errQuarantined refuses a command to a quarantined device.
var errQuarantined = errors.New("device quarantined: commands blocked")

func (c mqttCommander) Command(ctx context.Context, deviceID string, cmd safety.Command) error {
	if d, err := c.st.GetDevice(ctx, deviceID); err == nil && !d.Quarantine.At.IsZero() {
		return fmt.Errorf("command %s to %s: %w", cmd.Type, deviceID, errQuarantined)
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	return c.gw.SendCommand(deviceID, b)
}

// safetyConsumer feeds every non-motion event of the bus to the engine.
type safetyConsumer struct {
	eng    *safety.Engine
	log    *slog.Logger
	events prometheus.Counter
}

// handle is a bus.BatchHandler on bus.EventsFilter. An error (a decision
// that could not be stored) redelivers the batch; the engine's cause keys
// make that safe.
func (c *safetyConsumer) handle(ctx context.Context, msgs []bus.Msg) ([]int, error) {
	evs, poison, _, _ := decodeMsgs(msgs, c.log)
	if err := c.eng.HandleEvents(ctx, evs); err != nil {
		return nil, fmt.Errorf("safety: %w", err)
	}
	c.events.Add(float64(len(evs)))
	return poison, nil
}

// setupSafety builds the safety engine and its JSON API.
func (a *App) setupSafety() {
	sc := a.cfg.Safety
	log := a.log.With("component", "safety")
	remind := sc.RemindBefore
	if remind == 0 {
		remind = -1 // the config's 0 is "no reminders"; the engine's zero is its default
	}
	noMotion := sc.NoMotionAfter
	if noMotion == 0 {
		noMotion = -1 // the config's 0 is "off"
	}
	a.safety = safety.New(observedStore{a.store, a.esc.Observe}, mqttCommander{gw: a.mqtt, st: a.store}, a.deps.Clock, log, safety.Config{
		RemindBefore: remind, OfflineAfter: sc.OfflineAfter, BatteryWarn: sc.BatteryWarn,
		BatteryCritical: sc.BatteryCritical, SOSCancelWindow: sc.SOSCancelWindow, PreAlert: sc.PreAlert,
		ManDownPreAlert: sc.ManDownPreAlert, NoMotionAfter: noMotion,
	})
	a.falls.motion = a.safety.HandleMotion
	a.safetyCons = &safetyConsumer{eng: a.safety, log: log,
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_safety_events_total", Help: "Events the safety engine has applied.",
		})}
	a.reg.MustRegister(a.safetyCons.events, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_safety_timers", Help: "Deadlines pending in the safety engine (check-ins, overruns, pre-alerts, offline watches).",
	}, func() float64 { return float64(a.safety.Timers()) }))
	a.api = web.NewAPI(a.safety, a.safety.Alerts(), a.store, a.log.With("component", "api"), func() time.Time { return a.deps.Clock.Now() })
	a.api.SetFeed(a.feedHandler())
}

// startSafety loads the engine's state, then runs its deadlines and its
// consumer. Events that reached the stream before the consumer first
// existed are read from an hour before start, so a new installation or an
// upgrade acts on recent alarms but not on old history.
func (a *App) startSafety(ctx context.Context) error {
	if err := a.safety.Load(ctx); err != nil {
		return err
	}
	a.wg.Add(3)
	go func() {
		defer a.wg.Done()
		a.safety.Run(ctx)
	}()
	go func() {
		defer a.wg.Done()
		err := a.bus.Consume(ctx, bus.ConsumeConfig{Durable: "safety", Filter: bus.EventsFilter, MaxBatch: 256,
			Linger: 2 * time.Millisecond, StartTime: a.deps.Clock.Now().Add(-time.Hour)}, a.safetyCons.handle)
		if err != nil {
			a.log.Error("safety engine stopped", "err", err)
			a.runErr <- err
		}
	}()
	// Buttons, falls and alarms on their own consumer: an SOS is decided
	// at once even while position reports queue up.
	go func() {
		defer a.wg.Done()
		// No linger: an alarm is decided the moment it arrives (the
		// publisher gives one without a position the device's last fix,
		// so overtaking the position report sent before it loses nothing).
		err := a.bus.Consume(ctx, bus.ConsumeConfig{Durable: "safety-urgent", Filter: bus.UrgentFilter, MaxBatch: 64,
			NoLinger: true, StartTime: a.deps.Clock.Now().Add(-time.Hour)}, a.safetyCons.handle)
		if err != nil {
			a.log.Error("safety engine stopped", "err", err)
			a.runErr <- err
		}
	}()
	return nil
}
