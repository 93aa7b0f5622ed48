package store

import "context"

// TrackerStore maps the hardware identities of third-party trackers (a
// GT06 terminal's IMEI) to devices; part of Store. Such trackers prove no
// secret: the IMEI is all they send, so each is registered to exactly one
// device and one device has at most one.
type TrackerStore interface {
	// SetDeviceIMEI registers imei (15 digits) for a device, replacing its
	// previous one; "" removes it. Unknown device: ErrNotFound; an IMEI
	// another device has: ErrConflict.
	SetDeviceIMEI(ctx context.Context, deviceID, imei string) error
	// DeviceIMEI is a device's IMEI, "" when it has none.
	DeviceIMEI(ctx context.Context, deviceID string) (string, error)
	// DeviceByIMEI is the device an IMEI is registered to; none:
	// ErrNotFound.
	DeviceByIMEI(ctx context.Context, imei string) (Device, error)
}
