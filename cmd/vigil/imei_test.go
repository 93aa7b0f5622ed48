package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"vigil/internal/device"
	"vigil/internal/store/sqlite"
)

// TestCLIDeviceIMEI: vigil device imei registers a tracker's IMEI, refuses
// a malformed one, one another device has and an unknown device with a
// message, and removes it.
func TestCLIDeviceIMEI(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "acme", "--name", "Acme"); code != 0 {
		t.Fatalf("org add: %s", errs)
	}
	var devs []device.Credentials
	for range 2 {
		code, out, errs := cli(t, nil, "device", "add", "--data-dir", dir, "--org", "acme", "--name", "tracker", "--json")
		if code != 0 {
			t.Fatalf("device add: %s", errs)
		}
		var c device.Credentials
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatal(err)
		}
		devs = append(devs, c)
	}
	const imei = "490154203237518"
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--device", devs[0].DeviceID}, 2, "--imei IMEI or --remove"},
		{[]string{"--device", devs[0].DeviceID, "--imei", "490154203237519"}, 2, "Luhn"},
		{[]string{"--device", devs[0].DeviceID, "--imei", "4901542032375"}, 2, "15 digits"},
		{[]string{"--device", "dnope", "--imei", imei}, 1, "not found"},
		{[]string{"--device", devs[0].DeviceID, "--imei", imei}, 0, "registered"},
		{[]string{"--device", devs[1].DeviceID, "--imei", imei}, 1, "another device"},
	} {
		code, out, errs := cli(t, nil, append([]string{"device", "imei", "--data-dir", dir}, tc.args...)...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%v: %d %q %q, want %d and %q", tc.args, code, out, errs, tc.code, tc.want)
		}
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "vigil.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if d, err := st.DeviceByIMEI(context.Background(), imei); err != nil || d.ID != devs[0].DeviceID {
		t.Errorf("registered IMEI: %+v %v", d, err)
	}
	if code, _, errs := cli(t, nil, "device", "imei", "--data-dir", dir, "--device", devs[0].DeviceID, "--remove"); code != 0 {
		t.Fatalf("remove: %s", errs)
	}
	if _, err := st.DeviceByIMEI(context.Background(), imei); err == nil {
		t.Error("the removed IMEI still finds a device")
	}
}
