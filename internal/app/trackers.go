package app

import (
	"context"
	"errors"

	"vigil/internal/event"
	"vigil/internal/gateway/gt06"
	"vigil/internal/store"
)

// setupTrackers builds the listeners for third-party trackers that are
// turned on (trackers.gt06_listen). They publish through the same durable
// publisher as the MQTT and HTTPS gateways.
func (a *App) setupTrackers(pub gt06.Publisher, dec *event.Decoder) {
	if a.cfg.Trackers.GT06Listen == "" {
		return
	}
	a.gt06 = gt06.New(gt06.Config{Listen: a.cfg.Trackers.GT06Listen, RefuseShared: a.cfg.MQTT.SharedIdentity == "refuse"}, imeiAuth{a.store}, pub, dec, a.deps.Clock,
		a.log.With("component", "gt06"), a.reg, a)
	a.log.Warn("GT06 trackers accepted on plain TCP with IMEI-only identity: keep the port on a private APN or VPN", "listen", a.cfg.Trackers.GT06Listen)
}

// startTrackers opens the tracker listeners.
func (a *App) startTrackers() error {
	if a.gt06 == nil {
		return nil
	}
	if err := a.gt06.Start(); err != nil {
		return err
	}
	a.setAddr("gt06", a.gt06.Addr().String())
	a.onStop("gt06", func(context.Context) error { return a.gt06.Close() })
	return nil
}

// disconnectTracker closes a revoked device's tracker connection, if it has
// one.
func (a *App) disconnectTracker(deviceID string) bool {
	return a.gt06 != nil && a.gt06.Disconnect(deviceID)
}

// imeiAuth finds the enabled device an IMEI is registered to.
type imeiAuth struct{ st store.TrackerStore }

func (x imeiAuth) DeviceForIMEI(ctx context.Context, imei string) (string, string, bool, error) {
	d, err := x.st.DeviceByIMEI(ctx, imei)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	if !d.DisabledAt.IsZero() {
		return "", "", false, nil
	}
	return d.ID, d.OrgID, true, nil
}
