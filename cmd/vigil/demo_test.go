package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/device"
	"vigil/internal/store"
)

func openStore(t *testing.T, dir string) store.Store {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dir
	st, err := app.OpenStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestProvisionWorkers: a share of the simulated devices, spread evenly,
// is assigned to worker people; the file keeps them, so a second run
// creates no one twice, and a larger share adds only the missing ones.
func TestProvisionWorkers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	reg := device.NewRegistry(st, clock.Real{})
	file := filepath.Join(dir, "sim-devices.json")

	creds, people, err := provision(ctx, reg, st, "sim", "Simulated devices", 6, 0.5, file)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 6 || len(people) != 3 {
		t.Fatalf("got %d devices, %d workers; want 6, 3", len(creds), len(people))
	}
	for i, c := range creds {
		pid, worker := people[c.DeviceID]
		if worker != (i%2 == 1) {
			t.Errorf("device %d: worker %v, want the odd ones", i, worker)
		}
		d, err := st.GetDevice(ctx, c.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		if d.PersonID != pid {
			t.Errorf("device %d assigned to %q, want %q", i, d.PersonID, pid)
		}
		if worker {
			p, err := st.GetPerson(ctx, pid)
			if err != nil || p.Kind != store.PersonWorker || p.OrgID != "sim" {
				t.Errorf("person of device %d: %+v %v", i, p, err)
			}
		}
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}

	again, people2, err := provision(ctx, reg, st, "sim", "Simulated devices", 6, 0.5, file)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 6 || again[0] != creds[0] || len(people2) != 3 || people2[creds[1].DeviceID] != people[creds[1].DeviceID] {
		t.Errorf("second run: %v %v", again, people2)
	}
	all, people3, err := provision(ctx, reg, st, "sim", "Simulated devices", 6, 1, file)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 || len(people3) != 6 || people3[creds[1].DeviceID] != people[creds[1].DeviceID] {
		t.Errorf("every device a worker: %d workers", len(people3))
	}
	if list, err := st.ListPeople(ctx, "sim"); err != nil || len(list) != 6 {
		t.Errorf("%d people, want 6 (%v)", len(list), err)
	}
}

func TestReadCredsPersons(t *testing.T) {
	file := filepath.Join(t.TempDir(), "creds.json")
	if err := os.WriteFile(file, []byte(`{"device_id":"da","secret":"s1"}
{"device_id":"db","secret":"s2","person_id":"pb"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	creds, people, err := readCreds(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 2 || creds[1].Secret != "s2" || len(people) != 1 || people["db"] != "pb" {
		t.Errorf("got %v %v", creds, people)
	}
}

type fakeAlerts []store.Alert

func (f fakeAlerts) ListAlerts(_ context.Context, af store.AlertFilter) ([]store.Alert, error) {
	var out []store.Alert
	for _, a := range f {
		for _, s := range af.States {
			if a.State == s && a.OrgID == af.OrgID {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

func TestOpenAlerts(t *testing.T) {
	alerts := fakeAlerts{
		{OrgID: "demo", Kind: "sos", State: store.AlertRaised},
		{OrgID: "demo", Kind: "missed_checkin", State: store.AlertRaised},
		{OrgID: "demo", Kind: "sos", State: store.AlertAcknowledged},
		{OrgID: "demo", Kind: "fall", State: store.AlertPending},
		{OrgID: "demo", Kind: "fall", State: store.AlertCancelled},
		{OrgID: "demo", Kind: "geofence_exit", State: store.AlertResolved},
		{OrgID: "other", Kind: "duress", State: store.AlertRaised},
	}
	got, err := openAlerts(context.Background(), alerts, "demo")
	if want := "fall 1, missed_checkin 1, sos 2"; err != nil || got != want {
		t.Errorf("got %q %v, want %q", got, err, want)
	}
	if got, _ := openAlerts(context.Background(), fakeAlerts{}, "demo"); got != "none" {
		t.Errorf("got %q, want none", got)
	}
}

// TestDemoWorkers runs `vigil demo` briefly on free ports: it creates
// the workers and assigns their devices, imports the zone, the scripted
// workers start sessions through the JSON API, the status line shows the
// workers and the open alerts by kind, and on Ctrl-C the workers end
// their sessions.
func TestDemoWorkers(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	args := []string{"demo", "--data-dir", dir, "--devices", "6", "--mqtt-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--log-level", "warn", "--status-every", "1s"}
	if code := run(ctx, args, func(string) string { return "" }, &out, &errb); code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	stdout := out.String()
	for _, want := range []string{"lone workers     3 devices", "a missed check-in within about 3 min", "workers 3: sessions 3", "open alerts: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	st := openStore(t, dir)
	bg := context.Background()
	if zones, err := st.ListGeofences(bg, "demo"); err != nil || len(zones) != 1 || zones[0].ID != "demo-area" {
		t.Errorf("zones: %+v %v", zones, err)
	}
	// The demo's devices enrolled for client certificates: the server runs
	// with its default, mutual TLS required on MQTT.
	devs, err := st.ListDevices(bg, "demo")
	if err != nil || len(devs) != 6 {
		t.Fatalf("devices: %d %v", len(devs), err)
	}
	for _, d := range devs {
		if d.CertFingerprint == "" {
			t.Errorf("device %s has no client certificate", d.ID)
		}
	}
	sessions, err := st.ListSessions(bg, store.SessionFilter{OrgID: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 3 {
		t.Errorf("%d sessions, want one for each of the 3 scripted workers", len(sessions))
	}
	for _, s := range sessions {
		if s.State != store.SessionEnded || s.DeviceID == "" || s.CheckinInterval != demoInterval {
			t.Errorf("session %+v, want ended at shutdown, on the worker's device, 2-minute check-ins", s)
		}
	}
	var saved []simDevice
	b, err := os.ReadFile(filepath.Join(dir, "demo-devices.json"))
	if err != nil || json.Unmarshal(b, &saved) != nil || len(saved) != 6 || saved[1].PersonID == "" || saved[0].PersonID != "" {
		t.Errorf("demo-devices.json: %s %v", b, err)
	}
}
