package fleet_test

import (
	"fmt"
	"testing"
	"time"

	"vigil/internal/firmware"
	"vigil/internal/firmware/fleet"
	"vigil/internal/store"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func TestBucketIsStableAndSpread(t *testing.T) {
	counts := make([]int, 10)
	for i := range 10000 {
		id := fmt.Sprintf("dev-%d", i)
		b := fleet.Bucket("ro_1", id)
		if b != fleet.Bucket("ro_1", id) || b < 0 || b > 99 {
			t.Fatalf("bucket %d of %s", b, id)
		}
		counts[b/10]++
	}
	for i, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("buckets %d–%d hold %d of 10000 devices, want about 1000", i*10, i*10+9, n)
		}
	}
	// Raising the percentage only adds devices.
	r := store.FirmwareRollout{ID: "ro_1", Percent: 20}
	in := map[string]bool{}
	for i := range 1000 {
		id := fmt.Sprintf("dev-%d", i)
		in[id] = fleet.InRollout(r, id)
	}
	r.Percent = 60
	for id, was := range in {
		if was && !fleet.InRollout(r, id) {
			t.Fatalf("%s left the rollout when its percentage went up", id)
		}
	}
}

func releaseSet() fleet.ReleaseSet {
	return fleet.NewReleaseSet(2, []store.FirmwareImage{
		{Name: "watch-1.0.0.img", Hardware: "watch", Version: "1.0.0", TargetsVersion: 2, KnownProblem: true, SHA256: "aa"},
		{Name: "watch-1.1.0.img", Hardware: "watch", Version: "1.1.0", TargetsVersion: 2, SHA256: "bb"},
		{Name: "watch-0.9.0.img", Hardware: "watch", Version: "0.9.0", TargetsVersion: 1, SHA256: "cc"}, // dropped from the release
	})
}

func TestChoose(t *testing.T) {
	rs := releaseSet()
	older := store.FirmwareRollout{ID: "ro_a", Image: "watch-1.0.0.img", Percent: 100, CreatedAt: t0}
	newer := store.FirmwareRollout{ID: "ro_b", Image: "watch-1.1.0.img", Percent: 100, Devices: []string{"d1"}, CreatedAt: t0.Add(time.Hour)}
	dropped := store.FirmwareRollout{ID: "ro_c", Image: "watch-0.9.0.img", Percent: 100, CreatedAt: t0.Add(2 * time.Hour)}
	cases := []struct {
		name     string
		dev      string
		rollouts []store.FirmwareRollout
		want     string
	}{
		{"newest rollout that includes the device", "d1", []store.FirmwareRollout{older, newer}, "watch-1.1.0.img"},
		{"outside the newer rollout's group", "d2", []store.FirmwareRollout{older, newer}, "watch-1.0.0.img"},
		{"a dropped image is never chosen", "d2", []store.FirmwareRollout{dropped}, ""},
		{"paused", "d1", []store.FirmwareRollout{{ID: "ro_p", Image: "watch-1.1.0.img", Percent: 100, Paused: true}}, ""},
		{"zero per cent", "d1", []store.FirmwareRollout{{ID: "ro_z", Image: "watch-1.1.0.img", Percent: 0}}, ""},
		{"none", "d1", nil, ""},
	}
	for _, tc := range cases {
		im, _, ok := fleet.Choose(tc.dev, tc.rollouts, rs)
		if got := im.Name; got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: chose %q (%v), want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestShouldPause(t *testing.T) {
	cases := []struct {
		installed, failed, failures, percent int
		want                                 bool
	}{
		{0, 2, 3, 20, false},
		{0, 3, 3, 20, true},
		{8, 2, 0, 20, true},  // 20 % of 10
		{9, 1, 0, 20, false}, // 10 %
		{1, 1, 0, 20, false}, // too few attempts for a percentage
		{0, 9, 0, 0, false},  // both off
	}
	for _, tc := range cases {
		r := store.FirmwareRollout{Installed: tc.installed, Failed: tc.failed, PauseFailures: tc.failures, PausePercent: tc.percent}
		if got := fleet.ShouldPause(r); got != tc.want {
			t.Errorf("%+v: pause %v, want %v", tc, got, tc.want)
		}
	}
}

func TestCompliance(t *testing.T) {
	rs := releaseSet()
	now := t0.Add(48 * time.Hour)
	devs := []store.Device{{ID: "d1", Firmware: "1.1.0"}, {ID: "d2", Firmware: "1.0.0"}, {ID: "d3"}, {ID: "d4", DisabledAt: t0}}
	sts := []store.FirmwareDeviceStatus{
		{DeviceID: "d1", Version: "1.1.0", State: "installed", CheckedAt: now.Add(-time.Hour)},
		{DeviceID: "d2", Version: "1.0.0", State: "failed", Refusal: "rollback", CheckedAt: now.Add(-30 * time.Hour)},
	}
	rollouts := []store.FirmwareRollout{{ID: "ro_1", Image: "watch-1.1.0.img", Percent: 100, Devices: []string{"d1", "d2"}}}
	got := fleet.Compliance(devs, sts, rollouts, rs, now, 24*time.Hour)
	if len(got) != 3 {
		t.Fatalf("%d lines, want 3 (a disabled device is not in the fleet)", len(got))
	}
	d1, d2, d3 := got[0], got[1], got[2]
	if d1.Behind || d1.Stale || !d1.Approved || d1.Target != "1.1.0" {
		t.Errorf("d1: %+v", d1)
	}
	if !d2.Behind || !d2.Stale || !d2.Problem || d2.Refusal != "rollback" {
		t.Errorf("d2: %+v", d2)
	}
	if !d3.Behind || !d3.Stale || d3.Approved || d3.Running != "" {
		t.Errorf("d3 (never reported): %+v", d3)
	}
	if rs.Known("0.9.0", "") || !rs.Known("1.1.0", "bb") || rs.Known("1.1.0", "aa") {
		t.Error("release set membership")
	}
}

func TestNewRolloutValidates(t *testing.T) {
	rs := releaseSet()
	devs := []store.Device{{ID: "d1"}, {ID: "d2"}}
	neg := -1
	cases := []struct {
		req   fleet.RolloutRequest
		field string
	}{
		{fleet.RolloutRequest{Image: "watch-1.1.0.img", Percent: 10, Devices: []string{"d2", "d1"}}, ""},
		{fleet.RolloutRequest{Image: "watch-0.9.0.img", Percent: 10}, "image"},
		{fleet.RolloutRequest{Image: "watch-1.1.0.img", Percent: 101}, "percent"},
		{fleet.RolloutRequest{Image: "watch-1.1.0.img", Percent: 10, Devices: []string{"d1", "d9"}}, "devices[1]"},
		{fleet.RolloutRequest{Image: "watch-1.1.0.img", Percent: 10, Devices: []string{"d1", "d1"}}, "devices[1]"},
		{fleet.RolloutRequest{Image: "watch-1.1.0.img", Percent: 10, PauseFailures: &neg}, "pause_failures"},
	}
	for _, tc := range cases {
		r, err := fleet.NewRollout(tc.req, devs, rs)
		if tc.field == "" {
			if err != nil || r.Devices[0] != "d1" || r.PauseFailures != fleet.DefaultPauseFailures {
				t.Errorf("%+v: %+v %v", tc.req, r, err)
			}
			continue
		}
		if fe, ok := err.(*firmware.FieldError); !ok || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error naming %s", tc.req, err, tc.field)
		}
	}
}
