package storetest

import (
	"context"
	"testing"

	"vigil/internal/store"
)

// testDeviceIMEI: an IMEI is registered to one device, found back, moved,
// refused for a second device and removed; an unknown device is
// ErrNotFound.
func testDeviceIMEI(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	const imei, imei2 = "864717003283581", "356314041419858"
	_, err := s.DeviceByIMEI(ctx, imei)
	mustErr(t, err, store.ErrNotFound, "unregistered IMEI")
	if got, err := s.DeviceIMEI(ctx, "d1"); err != nil || got != "" {
		t.Fatalf("IMEI of d1 before: %q %v", got, err)
	}
	must(t, s.SetDeviceIMEI(ctx, "d1", imei), "register IMEI")
	d, err := s.DeviceByIMEI(ctx, imei)
	must(t, err, "device by IMEI")
	if d.ID != "d1" || d.OrgID != "acme" {
		t.Errorf("device by IMEI %+v, want d1 of acme", d)
	}
	if got, err := s.DeviceIMEI(ctx, "d1"); err != nil || got != imei {
		t.Errorf("IMEI of d1: %q %v", got, err)
	}
	mustErr(t, s.SetDeviceIMEI(ctx, "d9", imei), store.ErrConflict, "the same IMEI for another device (and organisation)")
	mustErr(t, s.SetDeviceIMEI(ctx, "nope", imei2), store.ErrNotFound, "unknown device")
	must(t, s.SetDeviceIMEI(ctx, "d1", imei2), "replace IMEI")
	_, err = s.DeviceByIMEI(ctx, imei)
	mustErr(t, err, store.ErrNotFound, "the replaced IMEI")
	if d, err := s.DeviceByIMEI(ctx, imei2); err != nil || d.ID != "d1" {
		t.Errorf("new IMEI: %+v %v", d, err)
	}
	must(t, s.SetDeviceIMEI(ctx, "d9", imei), "the freed IMEI for d9")
	must(t, s.SetDeviceIMEI(ctx, "d1", ""), "remove IMEI")
	_, err = s.DeviceByIMEI(ctx, imei2)
	mustErr(t, err, store.ErrNotFound, "the removed IMEI")
}
