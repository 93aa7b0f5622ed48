package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"vigil/internal/audit"
)

// revocationPoll is how often every instance looks for devices disabled
// anywhere (API, CLI, another instance, SQL): security requirement 7 wants
// a revoked device off within 5 s.
const revocationPoll = time.Second

// RevokeDevice disables a device for good and cuts it off on this
// instance at once: its live MQTT connection is closed and its certificate
// refused from the next handshake on. Other instances (and a revocation
// made outside the API) follow within revocationPoll. at is the first
// revocation time; closed reports whether a live connection was closed
// here.
func (a *App) RevokeDevice(ctx context.Context, deviceID string) (at time.Time, closed bool, err error) {
	if err := a.store.DisableDevice(ctx, deviceID, a.deps.Clock.Now()); err != nil {
		return time.Time{}, false, fmt.Errorf("revoke device: %w", err)
	}
	d, err := a.store.GetDevice(ctx, deviceID)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("revoke device: %w", err)
	}
	closed = a.mqtt.Revoke(d.ID, d.CertFingerprint)
	closed = a.disconnectTracker(d.ID) || closed
	a.log.Warn("device revoked", "device_id", d.ID, "org_id", d.OrgID, "connection_closed", closed)
	return d.DisabledAt, closed, nil
}

// loadRevocations gives the MQTT gateway every revoked device before it
// accepts a connection, and returns where the poll goes on from.
func (a *App) loadRevocations(ctx context.Context) (time.Time, error) {
	list, err := a.store.ListRevokedDevices(ctx, time.Time{})
	if err != nil {
		return time.Time{}, fmt.Errorf("load revoked devices: %w", err)
	}
	var last time.Time
	for _, d := range list {
		a.mqtt.Revoke(d.ID, d.CertFingerprint)
		last = d.DisabledAt
	}
	return last, nil
}

// watchRevocations polls for devices disabled since the newest one seen
// (a range scan over an index of disabled devices) and cuts each off. The
// window reaches a minute further back, since revocation times come from
// the clocks of whoever revoked; Revoke is idempotent.
func (a *App) watchRevocations(ctx context.Context, since time.Time, tick <-chan time.Time) {
	seen := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		var from time.Time
		if !since.IsZero() {
			from = since.Add(-time.Minute)
		}
		list, err := a.store.ListRevokedDevices(ctx, from)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Error("revocation poll failed", "err", err)
			}
			continue
		}
		for _, d := range list {
			if _, ok := seen[d.ID]; ok {
				continue
			}
			seen[d.ID] = d.DisabledAt
			cut := a.mqtt.Revoke(d.ID, d.CertFingerprint)
			if a.disconnectTracker(d.ID) || cut {
				a.log.Warn("device revoked elsewhere: connection closed", "device_id", d.ID, "org_id", d.OrgID)
			}
			if d.DisabledAt.After(since) {
				since = d.DisabledAt
			}
		}
		// Forget what left the window.
		for id, at := range seen {
			if at.Before(from) {
				delete(seen, id)
			}
		}
	}
}

// DeviceIdentityShared records a shared or cloned device identity
// (security requirement 6) in the audit log as a high-severity security
// event with the sources seen. The gateway calls it from the connect path;
// the record is written off that path.
func (a *App) DeviceIdentityShared(deviceID, orgID string, sources []string, at time.Time) {
	if a.audit == nil {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		outcome := "ok" // takeover: the newest connection was let in
		if a.cfg.MQTT.SharedIdentity == "refuse" {
			outcome = "denied"
		}
		if err := a.audit.Record(ctx, audit.Entry{OrgID: orgID, Actor: "system", Action: "device.identity_shared",
			ObjectType: "device", ObjectID: deviceID, Outcome: outcome, Severity: "high",
			Details: map[string]string{"sources": strings.Join(sources, " "), "policy": a.cfg.MQTT.SharedIdentity,
				"seen_at": at.UTC().Format(time.RFC3339)}}); err != nil {
			a.log.Error("audit: device identity shared not recorded", "device_id", deviceID, "err", err)
		}
	}()
}

// QuarantineDevice flags a misbehaving device (the MQTT gateway calls it
// once per device and reason): the flag goes to the store, where the
// device list shows it and the commander checks it, and a high-severity
// security event to the audit log. Written off the message path; the
// device's messages, alarms included, keep flowing.
func (a *App) QuarantineDevice(deviceID, orgID, reason string, at time.Time) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fresh, err := a.store.QuarantineDevice(ctx, deviceID, reason, at)
		if err != nil {
			a.log.Error("device quarantine not stored", "device_id", deviceID, "reason", reason, "err", err)
			return
		}
		if !fresh || a.audit == nil {
			return
		}
		if err := a.audit.Record(ctx, audit.Entry{OrgID: orgID, Actor: "system", Action: "device.quarantine",
			ObjectType: "device", ObjectID: deviceID, Outcome: "ok", Severity: "high",
			Details: map[string]string{"reason": reason}}); err != nil {
			a.log.Error("audit: device quarantine not recorded", "device_id", deviceID, "err", err)
		}
	}()
}

// ReleaseDevice lifts a device's quarantine: commands reach it again and
// the gateway watches it afresh.
func (a *App) ReleaseDevice(ctx context.Context, deviceID string) error {
	if err := a.store.ReleaseDevice(ctx, deviceID); err != nil {
		return fmt.Errorf("release device: %w", err)
	}
	a.mqtt.Release(deviceID)
	return nil
}
