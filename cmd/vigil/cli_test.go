package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/device"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
	"vigil/internal/vigiltest"
)

func cli(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIDeviceLifecycle(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := cli(t, nil, "device", "add", "--data-dir", dir, "--org", "acme", "--name", "p1"); code != 1 || !strings.Contains(errs, "vigil org add --id acme") {
		t.Fatalf("device add to a missing org: code %d, %q", code, errs)
	}
	if code, out, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "acme", "--name", "Acme Care"); code != 0 || !strings.Contains(out, "acme") {
		t.Fatalf("org add: %d %q %q", code, out, errs)
	}
	if code, _, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "Bad Id", "--name", "x"); code != 2 || !strings.Contains(errs, "--id") {
		t.Fatalf("org add with a bad id: %d %q", code, errs)
	}
	code, out, errs := cli(t, nil, "device", "add", "--data-dir", dir, "--org", "acme", "--name", "pendant 1", "--json")
	if code != 0 {
		t.Fatalf("device add: %d %s", code, errs)
	}
	var c device.Credentials
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.DeviceID == "" || c.Secret == "" {
		t.Fatalf("device add --json: %q %v", out, err)
	}
	code, out, _ = cli(t, nil, "device", "list", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, c.DeviceID) || !strings.Contains(out, "pendant 1") || strings.Contains(out, c.Secret) {
		t.Fatalf("device list: %d %q", code, out)
	}
	if code, _, errs := cli(t, nil, "device", "add", "--data-dir", dir, "--org", "acme"); code != 2 || !strings.Contains(errs, "--name") {
		t.Fatalf("device add without --name: %d %q", code, errs)
	}
	if code, out, _ := cli(t, nil, "migrate", "--data-dir", dir); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate on a current schema: %d %q", code, out)
	}
}

func TestCLIMigratePostgres(t *testing.T) {
	url := vigiltest.PostgresURL(t)
	code, out, errs := cli(t, nil, "migrate", "--data-dir", t.TempDir(), "--store", url)
	if code != 0 || !strings.Contains(out, "applied migrations") {
		t.Fatalf("migrate: %d %q %q", code, out, errs)
	}
	code, out, _ = cli(t, nil, "migrate", "--data-dir", t.TempDir(), "--store", url)
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate: %d %q", code, out)
	}
}

func TestCLIConfig(t *testing.T) {
	env := map[string]string{"VIGIL_STORE": "postgres://vigil:hunter2-secret@db/vigil", "VIGIL_NATS_URL": "nats://vigil:natspw-secret@nats1:4222"}
	code, out, errs := cli(t, env, "config", "dump")
	if code != 0 || strings.Contains(out, "hunter2") || strings.Contains(out, "natspw") || !strings.Contains(out, "[redacted]") {
		t.Fatalf("config dump: %d %q %q", code, out, errs)
	}
	if code, out, _ := cli(t, nil, "config", "check"); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("config check: %d %q", code, out)
	}
	code, _, errs = cli(t, nil, "config", "check", "--admin-listen", "0.0.0.0:9090")
	if code == 0 || !strings.Contains(errs, "admin") {
		t.Fatalf("public admin listener accepted: %d %q", code, errs)
	}
	if code, _, errs := cli(t, nil, "nonsense"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errs)
	}
}

// TestCLIPersonFallSensitivity: a carer tunes a resident's fall detector
// from the command line; values outside the evaluated bounds are refused
// with the bounds.
func TestCLIPersonFallSensitivity(t *testing.T) {
	dir := t.TempDir()
	ok := func(args ...string) string {
		t.Helper()
		code, out, errs := cli(t, nil, append(args, "--data-dir", dir)...)
		if code != 0 {
			t.Fatalf("%v: %d %s", args, code, errs)
		}
		return out
	}
	refused := func(wantCode int, want string, args ...string) {
		t.Helper()
		code, _, errs := cli(t, nil, append(args, "--data-dir", dir)...)
		if code != wantCode || !strings.Contains(errs, want) {
			t.Errorf("%v: code %d, %q; want %d and %q", args, code, errs, wantCode, want)
		}
	}
	ok("org", "add", "--id", "acme", "--name", "Acme Care")
	ok("org", "add", "--id", "other", "--name", "Other")
	refused(2, "--kind", "person", "add", "--org", "acme", "--name", "Ada", "--kind", "visitor")
	refused(2, "-3 to 3", "person", "add", "--org", "acme", "--name", "Ada", "--kind", "resident", "--fall-sensitivity", "7")
	refused(2, "want a number", "person", "add", "--org", "acme", "--name", "Ada", "--kind", "resident", "--fall-sensitivity", "high")
	refused(1, "vigil org add --id nope", "person", "add", "--org", "nope", "--name", "Ada", "--kind", "resident")
	out := ok("person", "add", "--org", "acme", "--name", "Ada", "--kind", "resident", "--fall-sensitivity", "-1.5")
	id := strings.Fields(out)[1]
	outOther := ok("person", "add", "--org", "other", "--name", "Bo", "--kind", "worker")
	otherID := strings.Fields(outOther)[1]

	var c device.Credentials
	if err := json.Unmarshal([]byte(ok("device", "add", "--org", "acme", "--name", "pendant", "--json")), &c); err != nil {
		t.Fatal(err)
	}
	refused(1, "not found in the device's organisation", "device", "assign", "--device", c.DeviceID, "--person", otherID)
	ok("device", "assign", "--device", c.DeviceID, "--person", id)
	if out := ok("device", "list", "--json"); !strings.Contains(out, `"person_id":"`+id+`"`) {
		t.Errorf("device list after assign: %s", out)
	}
	ok("person", "set", "--id", id, "--fall-sensitivity", "2")
	refused(2, "5s to 5m", "person", "set", "--id", id, "--fall-cancel-window", "2s")
	refused(2, "want a duration", "person", "set", "--id", id, "--fall-cancel-window", "soon")
	if out := ok("person", "set", "--id", id, "--fall-cancel-window", "15s"); !strings.Contains(out, "fall cancel window 15s") {
		t.Errorf("set cancel window: %s", out)
	}
	refused(1, "not found", "person", "set", "--id", "pnope", "--fall-sensitivity", "1")
	refused(2, "-3 to 3", "person", "set", "--id", id, "--fall-sensitivity", "-4")
	var people []struct {
		ID              string  `json:"id"`
		FallSensitivity float64 `json:"fall_sensitivity"`
	}
	if err := json.Unmarshal([]byte(ok("person", "list", "--org", "acme", "--json")), &people); err != nil {
		t.Fatal(err)
	}
	if len(people) != 1 || people[0].ID != id || people[0].FallSensitivity != 2 {
		t.Errorf("person list: %+v, want %s at +2", people, id)
	}

	// Fall false alarms per person: pre-alerts the wearer cancelled and
	// falls resolved as false alarms, not real falls or other kinds.
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "vigil.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	for i, x := range []struct{ kind, state, outcome string }{
		{"fall", "cancelled", ""}, {"fall", "resolved", "false_alarm"}, {"fall", "resolved", "assisted"},
		{"fall", "raised", ""}, {"sos", "cancelled", ""},
	} {
		at := t0.Add(time.Duration(i) * time.Minute)
		a, _, err := st.RaiseAlert(context.Background(), store.Alert{ID: fmt.Sprint("a", i), OrgID: "acme", PersonID: id, DeviceID: c.DeviceID,
			Kind: x.kind, Severity: "critical", State: store.AlertRaised, DedupKey: fmt.Sprint("k", i), RaisedAt: at, CauseTime: at},
			store.AlertEntry{At: at, Actor: "engine", Action: "raised", Cause: fmt.Sprint("c", i)})
		if err != nil {
			t.Fatal(err)
		}
		if x.state != "raised" {
			a.State, a.Outcome, a.ClosedAt, a.ClosedBy = store.AlertState(x.state), x.outcome, at.Add(time.Second), "test"
			if _, err := st.UpdateAlert(context.Background(), a, store.AlertEntry{At: at, Actor: "test", Action: x.state}); err != nil {
				t.Fatal(err)
			}
		}
	}
	st.Close()
	var withFA []struct {
		ID                string  `json:"id"`
		FallFalseAlarms   int     `json:"fall_false_alarms"`
		FallCancelWindowS float64 `json:"fall_cancel_window_s"`
	}
	if err := json.Unmarshal([]byte(ok("person", "list", "--org", "acme", "--json")), &withFA); err != nil {
		t.Fatal(err)
	}
	if len(withFA) != 1 || withFA[0].FallFalseAlarms != 2 || withFA[0].FallCancelWindowS != 15 {
		t.Errorf("fall false alarms %+v, want 2", withFA)
	}
	if out := ok("person", "list", "--org", "acme"); !strings.Contains(out, "FALL FALSE ALARMS") {
		t.Errorf("person list table: %s", out)
	}
	ok("device", "assign", "--device", c.DeviceID, "--person", "none")
}

// TestCLISafety: duress codes come from a file, never the command line;
// zones import validates the whole file first and lists back as GeoJSON;
// alerts and sessions list.
func TestCLISafety(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (int, string, string) {
		t.Helper()
		return cli(t, nil, append(args, "--data-dir", dir)...)
	}
	ok := func(args ...string) string {
		t.Helper()
		code, out, errs := run(args...)
		if code != 0 {
			t.Fatalf("%v: %d %s", args, code, errs)
		}
		return out
	}
	refused := func(wantCode int, want string, args ...string) {
		t.Helper()
		code, _, errs := run(args...)
		if code != wantCode || !strings.Contains(errs, want) {
			t.Errorf("%v: code %d, %q; want %d and %q", args, code, errs, wantCode, want)
		}
	}
	ok("org", "add", "--id", "acme", "--name", "Acme Care")
	id := strings.Fields(ok("person", "add", "--org", "acme", "--name", "Ann", "--kind", "worker"))[1]

	codeFile := filepath.Join(dir, "duress")
	if err := os.WriteFile(codeFile, []byte("9111\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok("person", "set", "--id", id, "--duress-code-file", codeFile)
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "vigil.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.GetPerson(context.Background(), id)
	st.Close()
	if err != nil || !bytes.Equal(p.DuressCodeHash, store.DuressHash(id, "9111")) {
		t.Errorf("duress code not stored as its hash: %v", err)
	}
	if err := os.WriteFile(codeFile, []byte("12\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused(2, "4 to 16 characters", "person", "set", "--id", id, "--duress-code-file", codeFile)
	ok("person", "set", "--id", id, "--clear-duress-code")

	zones := filepath.Join(dir, "zones.geojson")
	good := `{"type":"FeatureCollection","features":[{"type":"Feature","id":"site","geometry":{"type":"Point","coordinates":[-1.55,53.8]},"properties":{"name":"site","rule":"must_stay_inside","radius_m":300}}]}`
	if err := os.WriteFile(zones, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := ok("zones", "import", zones, "--org", "acme"); !strings.Contains(out, "1 zones imported") {
		t.Errorf("zones import: %s", out)
	}
	if out := ok("zones", "list", "--org", "acme"); !strings.Contains(out, `"must_stay_inside"`) || !strings.Contains(out, `"site"`) {
		t.Errorf("zones list: %s", out)
	}
	bad := strings.Replace(good, "must_stay_inside", "stay", 1)
	if err := os.WriteFile(zones, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	refused(1, "properties.rule", "zones", "import", zones, "--org", "acme")
	refused(1, "not found", "zones", "import", zones, "--org", "nope")
	refused(2, "--org", "zones", "list")

	if out := ok("alerts", "list"); !strings.Contains(out, "KIND") {
		t.Errorf("alerts list: %s", out)
	}
	if out := ok("sessions", "list", "--active", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("sessions list --json: %q", out)
	}
	refused(2, "--limit", "alerts", "list", "--limit", "0")
}
