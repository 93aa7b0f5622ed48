package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"vigil/internal/safety"
	"vigil/internal/store"
)

type oneDevice struct{ d store.Device }

func (o oneDevice) GetDevice(context.Context, string) (store.Device, error) { return o.d, nil }

// TestCommandsToQuarantinedDeviceBlocked: the commander sends nothing to
// a quarantined device and says why.
func TestCommandsToQuarantinedDeviceBlocked(t *testing.T) {
	c := mqttCommander{gw: nil, st: oneDevice{store.Device{ID: "d1", Quarantine: store.DeviceQuarantine{Reason: "flood", At: time.Now()}}}}
	err := c.Command(context.Background(), "d1", safety.Command{Type: "checkin_reminder"})
	if !errors.Is(err, errQuarantined) {
		t.Fatalf("command to a quarantined device: %v, want errQuarantined", err)
	}
}
