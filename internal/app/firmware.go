package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"vigil/internal/alert"
	"vigil/internal/audit"
	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/firmware"
	"vigil/internal/firmware/fleet"
	"vigil/internal/gateway/httpgw"
	"vigil/internal/pki"
	"vigil/internal/safety"
	"vigil/internal/store"
)

// OnlineKeyPath is where the server keeps its online firmware key (made
// on first use, 0600): it signs the image repository's snapshot and
// timestamp and every director choice, never a release.
func OnlineKeyPath(dataDir string) string { return filepath.Join(dataDir, "firmware", "online.key") }

// FirmwareOnlineKey reads (or makes, on first use) the server's online
// firmware key in the data directory.
func FirmwareOnlineKey(dataDir string) (*firmware.Signer, error) {
	p := OnlineKeyPath(dataDir)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("firmware online key: %w", err)
	}
	return firmware.LoadOrCreateKey(p)
}

// FirmwareService is the firmware service over a store, as the server and
// the CLI use it.
func FirmwareService(cfg config.FirmwareConfig, st fleet.Store, dataDir string, clk clock.Clock) (*fleet.Service, error) {
	key, err := FirmwareOnlineKey(dataDir)
	if err != nil {
		return nil, err
	}
	return fleet.NewService(st, key, clk, fleet.Config{
		TimestampTTL:  cfg.TimestampTTL,
		DirectorTTL:   cfg.DirectorTTL,
		ProblemAfter:  cfg.ProblemAfter,
		StaleAfter:    cfg.StaleAfter,
		CheckEvery:    cfg.CheckEvery,
		MaxImageBytes: int64(cfg.MaxImageMB) << 20,
	}), nil
}

func (a *App) firmwareService() (*fleet.Service, error) {
	return FirmwareService(a.cfg.Firmware, a.store, a.cfg.DataDir, a.deps.Clock)
}

// startFirmware starts the known-problem check: a device that runs a
// version marked with a known problem for longer than
// firmware.problem_after gets a high-severity security event, once per
// version.
func (a *App) startFirmware(ctx context.Context) error {
	svc, err := a.firmwareService()
	if err != nil {
		return err
	}
	tm := clock.TimersOf(a.deps.Clock)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := tm.NewTimer()
		defer t.Stop()
		for {
			t.ResetAt(tm.Now().Add(svc.Config().CheckEvery))
			select {
			case <-ctx.Done():
				return
			case <-t.C():
			}
			if err := a.checkFirmwareProblems(ctx, svc); err != nil && ctx.Err() == nil {
				a.log.Error("firmware known-problem check failed", "component", "firmware", "err", err)
			}
		}
	}()
	return nil
}

// checkFirmwareProblems raises each device on a version with a known
// problem past the grace period, once.
func (a *App) checkFirmwareProblems(ctx context.Context, svc *fleet.Service) error {
	list, err := svc.Problems(ctx)
	if err != nil {
		return err
	}
	for _, d := range list {
		if a.audit != nil {
			if err := a.audit.Record(ctx, audit.Entry{OrgID: d.OrgID, Actor: "system", Action: "firmware.known_problem",
				ObjectType: "device", ObjectID: d.DeviceID, Outcome: "ok", Severity: "high",
				Details: map[string]string{"version": d.Version, "since": d.VersionSince.UTC().Format(time.RFC3339)}}); err != nil {
				return fmt.Errorf("known problem of %s: %w", d.DeviceID, err)
			}
		}
		if err := a.raiseFirmwareProblem(ctx, d.DeviceID, d.OrgID, d.Version, d.VersionSince); err != nil {
			return err
		}
		if err := a.store.MarkFirmwareProblemReported(ctx, d.DeviceID, a.deps.Clock.Now()); err != nil {
			return err
		}
		a.log.Warn("device runs firmware with a known problem", "component", "firmware", "device_id", d.DeviceID, "org_id", d.OrgID, "version", d.Version)
	}
	return nil
}

// registerFirmware serves the device-facing update repositories:
//
//	GET  /firmware/v1/devices/{id}/director/{file}         the device's director metadata
//	GET  /firmware/v1/devices/{id}/images/metadata/{file}  the image repository's metadata
//	GET  /firmware/v1/devices/{id}/images/targets/{name}   an approved image
//	POST /firmware/v1/devices/{id}/status                  the device's report
//
// Every route authenticates the device named in the path (bearer
// credentials, or its enrolled client certificate): a device reads only
// its own director metadata.
func (a *App) registerFirmware(mux *http.ServeMux) error {
	svc, err := a.firmwareService()
	if err != nil {
		return err
	}
	h := &firmwareHandler{a: a, svc: svc}
	mux.HandleFunc("GET /firmware/v1/devices/{id}/director/{file}", h.device(h.director))
	mux.HandleFunc("GET /firmware/v1/devices/{id}/images/metadata/{file}", h.device(h.imageMeta))
	mux.HandleFunc("GET /firmware/v1/devices/{id}/images/targets/{name}", h.device(h.image))
	mux.HandleFunc("POST /firmware/v1/devices/{id}/status", h.device(h.status))
	return nil
}

type firmwareHandler struct {
	a   *App
	svc *fleet.Service
}

// device authenticates the device of the path and hands its record on.
func (h *firmwareHandler) device(next func(w http.ResponseWriter, r *http.Request, d store.Device)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ok, err := h.authenticate(r, id)
		if err != nil {
			h.a.log.Error("firmware: device authentication failed", "device_id", id, "err", err)
			w.Header().Set("Retry-After", "5")
			httpgw.WriteError(w, http.StatusServiceUnavailable, "unavailable", "", "try again later")
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-devices"`)
			httpgw.WriteError(w, http.StatusUnauthorized, "unauthorized", "", "unknown device or wrong credentials")
			return
		}
		d, err := h.a.store.GetDevice(r.Context(), id)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		next(w, r, d)
	}
}

func (h *firmwareHandler) authenticate(r *http.Request, id string) (bool, error) {
	if secret, ok := bearerOf(r); ok {
		_, ok, err := h.a.devices.AuthenticateDevice(r.Context(), id, secret)
		return ok, err
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return false, nil
	}
	certs := r.TLS.PeerCertificates
	if err := pki.VerifyClient(certs, h.a.devCA.Pool(), h.a.deps.Clock.Now()); err != nil {
		return false, nil
	}
	if cid, err := pki.DeviceID(certs[0]); err != nil || cid != id {
		return false, nil
	}
	_, ok, err := h.a.devices.AuthenticateDeviceCert(r.Context(), id, pki.Fingerprint(certs[0].Raw))
	return ok, err
}

func bearerOf(r *http.Request) (string, bool) {
	const p = "Bearer "
	v := r.Header.Get("Authorization")
	if len(v) <= len(p) || !equalFold(v[:len(p)], p) {
		return "", false
	}
	return v[len(p):], true
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

func (h *firmwareHandler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *firmware.FieldError
	switch {
	case errors.As(err, &fe):
		httpgw.WriteError(w, http.StatusBadRequest, "invalid", fe.Field, fe.Msg)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, fleet.ErrNoRelease):
		httpgw.WriteError(w, http.StatusNotFound, "not_found", "", "no such file")
	default:
		h.a.log.Error("firmware request failed", "pattern", r.Pattern, "err", err)
		httpgw.WriteError(w, http.StatusInternalServerError, "internal", "", "internal error")
	}
}

func serveBytes(w http.ResponseWriter, ct string, b []byte) {
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

func (h *firmwareHandler) director(w http.ResponseWriter, r *http.Request, d store.Device) {
	b, err := h.svc.DirectorMetadata(r.Context(), d.ID, r.PathValue("file"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	serveBytes(w, "application/json", b)
}

func (h *firmwareHandler) imageMeta(w http.ResponseWriter, r *http.Request, _ store.Device) {
	b, err := h.svc.ImageMetadata(r.Context(), r.PathValue("file"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	serveBytes(w, "application/json", b)
}

func (h *firmwareHandler) image(w http.ResponseWriter, r *http.Request, _ store.Device) {
	b, err := h.svc.Image(r.Context(), r.PathValue("name"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Disposition", "attachment")
	serveBytes(w, "application/octet-stream", b)
}

// status records a device's report: its running version, a refusal (a
// security event: someone may be attacking the update path), an automatic
// pause of its rollout, and quarantine for firmware not in the release
// set (security requirement 37).
func (h *firmwareHandler) status(w http.ResponseWriter, r *http.Request, d store.Device) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, firmware.MaxReportBytes))
	if err != nil {
		httpgw.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", "", fmt.Sprintf("body larger than %d bytes", firmware.MaxReportBytes))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		httpgw.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type", "Content-Type must be application/json")
		return
	}
	rep, err := firmware.DecodeReport(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out, err := h.svc.Status(r.Context(), d, rep)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.a.deps.Clock.Now()
	if rep.Refusal != "" {
		h.record(r.Context(), audit.Entry{OrgID: d.OrgID, Actor: "device", Action: "firmware.refused", ObjectType: "device", ObjectID: d.ID,
			Outcome: "denied", Severity: "high", Details: map[string]string{"refusal": string(rep.Refusal), "version": rep.Version}})
		h.a.log.Warn("device refused a firmware update", "component", "firmware", "device_id", d.ID, "org_id", d.OrgID, "refusal", rep.Refusal)
	}
	if out.Paused != nil {
		h.record(r.Context(), audit.Entry{OrgID: d.OrgID, Actor: "system", Action: "firmware.rollout_paused", ObjectType: "rollout", ObjectID: out.Paused.ID,
			Outcome: "ok", Severity: "high", Details: map[string]string{"reason": "failures", "failed": strconv.Itoa(out.Paused.Failed),
				"installed": strconv.Itoa(out.Paused.Installed)}})
		h.a.log.Warn("firmware rollout paused: failures", "component", "firmware", "rollout_id", out.Paused.ID, "org_id", d.OrgID, "failed", out.Paused.Failed)
	}
	if out.Unknown {
		h.a.QuarantineDevice(d.ID, d.OrgID, firmware.QuarantineUnknownFirmware, now)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"recorded":true}` + "\n"))
}

func (h *firmwareHandler) record(ctx context.Context, e audit.Entry) {
	if h.a.audit == nil {
		return
	}
	if err := h.a.audit.Record(ctx, e); err != nil {
		h.a.log.Error("audit: firmware event not recorded", "action", e.Action, "device_id", e.ObjectID, "err", err)
	}
}

// raiseFirmwareProblem raises a firmware_problem alert for a device on a
// version with a known problem, once per device and version (its dedup
// key and cause), through the store escalation observes.
func (a *App) raiseFirmwareProblem(ctx context.Context, deviceID, orgID, version string, since time.Time) error {
	d, err := a.store.GetDevice(ctx, deviceID)
	if err != nil {
		return fmt.Errorf("firmware problem of %s: %w", deviceID, err)
	}
	now := a.deps.Clock.Now().UTC()
	key := "firmware_problem:" + deviceID + ":" + version
	detail := "firmware " + version + " has a known problem; on it since " + since.UTC().Format(time.RFC3339)
	al := store.Alert{ID: safety.NewID("a"), OrgID: orgID, PersonID: d.PersonID, DeviceID: deviceID, Kind: alert.KindFirmwareProblem,
		Severity: alert.SeverityWarning, State: store.AlertRaised, DedupKey: key, RaisedAt: now, CauseTime: since, Detail: detail}
	_, _, err = observedStore{a.store, a.esc.Observe}.RaiseAlert(ctx, al,
		store.AlertEntry{At: now, Actor: "firmware", Action: alert.ActionRaised, Detail: detail, Cause: key})
	if err != nil {
		return fmt.Errorf("firmware problem of %s: %w", deviceID, err)
	}
	return nil
}
