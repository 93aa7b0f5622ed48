package sim

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"vigil/internal/clock"
	"vigil/internal/firmware"
)

// FirmwareConfig is a simulated device's update client: the firmware it
// runs and the trusted roots it was provisioned with.
type FirmwareConfig struct {
	// URL is the server's base URL, https://HOST:PORT.
	URL        string
	Credential Credential
	HTTP       *http.Client
	// Dir keeps the device's trusted metadata across checks.
	Dir                     string
	ImageRoot, DirectorRoot []byte
	Hardware                string
	Running                 string // the version it starts on
	Clock                   clock.Clock
}

// FirmwareDevice is the simulator's verifier: a go-tuf v2 client that
// installs what the director chooses only when the offline-signed image
// repository approves it, and reports every outcome to the server.
type FirmwareDevice struct {
	c *firmware.Client
}

// NewFirmwareDevice prepares a device's update client.
func NewFirmwareDevice(cfg FirmwareConfig) (*FirmwareDevice, error) {
	v, err := firmware.ParseVersion(cfg.Running)
	if err != nil {
		return nil, fmt.Errorf("simulated firmware: %w", err)
	}
	c, err := firmware.NewClient(firmware.ClientConfig{
		BaseURL: cfg.URL + "/firmware/v1", DeviceID: cfg.Credential.DeviceID, Secret: cfg.Credential.Secret, HTTP: cfg.HTTP,
		Dir: cfg.Dir, ImageRoot: cfg.ImageRoot, DirectorRoot: cfg.DirectorRoot, Hardware: cfg.Hardware, Clock: cfg.Clock,
	}, v)
	if err != nil {
		return nil, fmt.Errorf("simulated firmware: %w", err)
	}
	return &FirmwareDevice{c: c}, nil
}

// Running is the version the device runs.
func (d *FirmwareDevice) Running() (string, error) {
	_, v, err := d.c.Installed()
	return v.String(), err
}

// Check asks for an update, installs it if it verifies, and reports the
// outcome (installed, checking, or failed with the refusal). The update's
// error comes back too: a refusal is firmware.ReasonOf(err).
func (d *FirmwareDevice) Check(ctx context.Context) (firmware.Result, error) {
	res, err := d.c.Update(ctx)
	if err != nil && firmware.ReasonOf(err) == "" && ctx.Err() != nil {
		return res, err
	}
	if rerr := d.c.Report(ctx, firmware.ReportOf(res, err)); rerr != nil {
		return res, errors.Join(err, rerr)
	}
	return res, err
}

// ReportFailure tells the server an install failed on the device (a
// simulated flash failure), for rollouts that must pause.
func (d *FirmwareDevice) ReportFailure(ctx context.Context, version, msg string) error {
	return d.c.Report(ctx, firmware.StatusReport{Version: version, State: "failed", Error: msg})
}

// ReportRunning tells the server what the device runs (a device with
// firmware from elsewhere reports it too).
func (d *FirmwareDevice) ReportRunning(ctx context.Context, version string) error {
	return d.c.Report(ctx, firmware.StatusReport{Version: version, State: "checking"})
}
