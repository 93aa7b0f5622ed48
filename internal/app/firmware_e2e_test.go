package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/device"
	"vigil/internal/firmware"
	"vigil/internal/firmware/fleet"
	"vigil/internal/sim"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

// firmwareWorld is a running app with an offline-signed release (watch
// 1.0.0, marked with a known problem, and 1.1.0) uploaded, and simulated
// devices of org acme that verify updates with go-tuf.
type firmwareWorld struct {
	t       *testing.T
	a       *app.App
	clk     *clock.Manual
	api     *apiClient
	svc     *fleet.Service
	online  *firmware.Signer
	release firmware.Repo
	keys    []*firmware.Signer
	roots   [2][]byte // image, director
}

func newFirmwareWorld(t *testing.T, cfg config.Config) *firmwareWorld {
	t.Helper()
	clk := clock.NewManual(time.Now())
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk})
	w := &firmwareWorld{t: t, a: a, clk: clk, api: newAPIClient(t, a)}
	ctx := context.Background()
	var err error
	if w.online, err = app.FirmwareOnlineKey(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(app.OnlineKeyPath(cfg.DataDir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("online key file: %v %v, want mode 0600", fi.Mode(), err)
	}
	if w.svc, err = app.FirmwareService(cfg.Firmware, a.Store(), cfg.DataDir, clk); err != nil {
		t.Fatal(err)
	}
	// The release pipeline, offline: two keys, both must sign.
	dir := t.TempDir()
	w.release = firmware.Repo{Dir: filepath.Join(dir, "repo")}
	paths, err := w.release.Init(firmware.InitOptions{Keys: 2, Threshold: 2, Online: w.online.Key(), KeyDir: filepath.Join(dir, "keys"), Expires: 365 * 24 * time.Hour}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"1.0.0", "1.1.0"} {
		f := filepath.Join(dir, "image-"+v)
		if err := os.WriteFile(f, []byte("watch firmware "+v), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := w.release.Add(f, v, "watch", i == 0, clk.Now().Add(180*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range paths {
		k, err := firmware.ReadKeyFile(p)
		if err != nil {
			t.Fatal(err)
		}
		w.keys = append(w.keys, k)
		if _, err := w.release.Sign(k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := w.release.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Upload(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Uploading the same release again, or one signed by one key, is refused.
	if _, err := w.svc.Upload(ctx, b); !firmware.IsReleaseError(err) {
		t.Fatalf("upload again: %v, want refused", err)
	}
	if w.roots[0], err = w.svc.ImageRoot(ctx); err != nil {
		t.Fatal(err)
	}
	if w.roots[1], err = w.svc.DirectorRoot(ctx); err != nil {
		t.Fatal(err)
	}
	return w
}

// device is a simulated device of acme running version.
func (w *firmwareWorld) device(version string) (device.Credentials, *sim.FirmwareDevice) {
	w.t.Helper()
	c := register(w.t, w.a)
	d, err := sim.NewFirmwareDevice(sim.FirmwareConfig{
		URL: "https://" + w.a.Addr("https"), Credential: sim.Credential{DeviceID: c.DeviceID, Secret: c.Secret},
		HTTP: &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(w.t, w.a)}},
		Dir:  w.t.TempDir(), ImageRoot: w.roots[0], DirectorRoot: w.roots[1], Hardware: "watch", Running: version, Clock: w.clk,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := d.ReportRunning(context.Background(), version); err != nil {
		w.t.Fatal(err)
	}
	return c, d
}

type complianceJSON struct {
	Devices []fleet.DeviceCompliance `json:"devices"`
	Summary map[string]int           `json:"summary"`
}

func (w *firmwareWorld) compliance() map[string]fleet.DeviceCompliance {
	w.t.Helper()
	var out complianceJSON
	if code := w.api.do("GET", "/api/v1/orgs/acme/firmware/compliance", "", &out); code != 200 {
		w.t.Fatalf("compliance: %d", code)
	}
	m := map[string]fleet.DeviceCompliance{}
	for _, d := range out.Devices {
		m[d.DeviceID] = d
	}
	return m
}

type rolloutOut struct {
	ID           string `json:"id"`
	Paused       bool   `json:"paused"`
	PausedReason string `json:"paused_reason"`
	Failed       int    `json:"failed"`
	Installed    int    `json:"installed"`
}

func (w *firmwareWorld) rollout(body string) rolloutOut {
	w.t.Helper()
	w.clk.Advance(time.Second) // the newest rollout wins: one at a time
	var r rolloutOut
	if code := w.api.do("POST", "/api/v1/orgs/acme/firmware/rollouts", body, &r); code != 201 {
		w.t.Fatalf("create rollout %s: %d", body, code)
	}
	return r
}

func refusal(err error) firmware.Refusal { return firmware.ReasonOf(err) }

// TestFirmwareRolloutEndToEnd: an offline-signed release rolls out to a
// group; a simulated device verifies and installs it and the compliance
// view shows it; failures pause a rollout on their own; the director
// pointing a device back at an older version is refused (rollback), and
// so is an image only the server's online key signed; a device reporting
// firmware outside the release set is quarantined (security requirements
// 33 and 37).
func TestFirmwareRolloutEndToEnd(t *testing.T) { firmwareRollout(t, vigiltest.Config(t)) }

// TestFirmwareRolloutPostgres is the same on PostgreSQL.
func TestFirmwareRolloutPostgres(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.Store = config.Secret(vigiltest.PostgresURL(t))
	firmwareRollout(t, cfg)
}

func firmwareRollout(t *testing.T, cfg config.Config) {
	w := newFirmwareWorld(t, cfg)
	ctx := context.Background()
	c1, d1 := w.device("1.0.0")
	c2, d2 := w.device("1.0.0")
	c3, d3 := w.device("1.0.0")
	c4, d4 := w.device("1.0.0")

	var rel struct {
		Images []struct {
			Name         string `json:"name"`
			KnownProblem bool   `json:"known_problem"`
		} `json:"images"`
	}
	if code := w.api.do("GET", "/api/v1/orgs/acme/firmware/releases", "", &rel); code != 200 || len(rel.Images) != 2 || !rel.Images[0].KnownProblem {
		t.Fatalf("releases: %d %+v", code, rel)
	}
	// Bad input names the field.
	for body, field := range map[string]string{
		`{"image":"watch-9.9.9.img","percent":10}`:                      "image",
		`{"image":"watch-1.1.0.img","percent":101}`:                     "percent",
		`{"image":"watch-1.1.0.img","percent":10,"devices":["nobody"]}`: "devices[0]",
		`{"image":"watch-1.1.0.img","percent":10,"colour":"red"}`:       "colour",
	} {
		var e struct {
			Error struct{ Field string } `json:"error"`
		}
		if code := w.api.do("POST", "/api/v1/orgs/acme/firmware/rollouts", body, &e); code != 400 || e.Error.Field != field {
			t.Errorf("rollout %s: %d %+v, want 400 naming %s", body, code, e, field)
		}
	}

	// Group A (d1, d2) gets 1.1.0 at 100 %.
	ra := w.rollout(`{"name":"pilot","image":"watch-1.1.0.img","percent":100,"devices":["` + c1.DeviceID + `","` + c2.DeviceID + `"]}`)
	res, err := d1.Check(ctx)
	if err != nil || !res.Installed || res.Version.String() != "1.1.0" {
		t.Fatalf("d1 update: %+v %v, want 1.1.0 installed", res, err)
	}
	// d3 is not in the group: nothing to install.
	if res, err := d3.Check(ctx); err != nil || res.Installed {
		t.Fatalf("d3 outside the group: %+v %v", res, err)
	}
	comp := w.compliance()
	if c := comp[c1.DeviceID]; c.Running != "1.1.0" || c.Target != "1.1.0" || c.Behind || !c.Approved || c.Stale || c.LastCheck.IsZero() || c.RolloutID != ra.ID {
		t.Errorf("compliance of d1: %+v", c)
	}
	if c := comp[c2.DeviceID]; c.Running != "1.0.0" || c.Target != "1.1.0" || !c.Behind || !c.Problem {
		t.Errorf("compliance of d2 (not updated yet): %+v", c)
	}
	if c := comp[c3.DeviceID]; c.Target != "" || !c.Behind || c.Newest != "1.1.0" {
		t.Errorf("compliance of d3 (no rollout): %+v", c)
	}
	if d, err := w.a.Store().GetDevice(ctx, c1.DeviceID); err != nil || d.Firmware != "1.1.0" {
		t.Errorf("store device firmware: %q %v", d.Firmware, err)
	}

	// A device reads only its own director: d1's secret on d2's path is
	// refused, and so is no secret at all.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(t, w.a)}}
	for _, secret := range []string{c1.Secret, ""} {
		req, _ := http.NewRequest("GET", "https://"+w.a.Addr("https")+"/firmware/v1/devices/"+c2.DeviceID+"/director/timestamp.json", nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("another device's director with secret %v: %d, want 401", secret != "", resp.StatusCode)
		}
	}

	// A bad report names the field; a body that is not JSON is refused.
	for _, tc := range []struct {
		ct, body, field string
		status          int
	}{
		{"application/json", `{"version":"1.1","state":"installed"}`, "version", 400},
		{"application/json", `{"version":"1.1.0","state":"installed","admin":true}`, "admin", 400},
		{"text/plain", `{"version":"1.1.0","state":"installed"}`, "Content-Type", 415},
	} {
		req, _ := http.NewRequest("POST", "https://"+w.a.Addr("https")+"/firmware/v1/devices/"+c1.DeviceID+"/status", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+c1.Secret)
		req.Header.Set("Content-Type", tc.ct)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Field string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.status || e.Error.Field != tc.field {
			t.Errorf("status report %s: %d naming %q, want %d naming %q", tc.body, resp.StatusCode, e.Error.Field, tc.status, tc.field)
		}
	}

	// Group B (d3, d4): two failures pause the rollout automatically.
	rb := w.rollout(`{"image":"watch-1.1.0.img","percent":100,"pause_failures":2,"devices":["` + c3.DeviceID + `","` + c4.DeviceID + `"]}`)
	if err := d3.ReportFailure(ctx, "1.0.0", "flash write failed"); err != nil {
		t.Fatal(err)
	}
	if err := d4.ReportFailure(ctx, "1.0.0", "flash write failed"); err != nil {
		t.Fatal(err)
	}
	var list struct{ Rollouts []rolloutOut }
	if code := w.api.do("GET", "/api/v1/orgs/acme/firmware/rollouts", "", &list); code != 200 {
		t.Fatalf("list rollouts: %d", code)
	}
	for _, r := range list.Rollouts {
		if r.ID == rb.ID && (!r.Paused || r.PausedReason != "failures" || r.Failed != 2) {
			t.Errorf("rollout B after two failures: %+v, want paused for failures", r)
		}
		if r.ID == ra.ID && (r.Paused || r.Installed != 1) {
			t.Errorf("rollout A: %+v", r)
		}
	}
	if res, err := d3.Check(ctx); err != nil || res.Installed {
		t.Errorf("d3 under a paused rollout: %+v %v, want nothing", res, err)
	}
	// Resuming is an operator's choice; lowering the percentage is refused.
	if code := w.api.do("PUT", "/api/v1/orgs/acme/firmware/rollouts/"+rb.ID, `{"percent":50}`, nil); code != 400 {
		t.Errorf("lower the percentage: %d, want 400", code)
	}
	if code := w.api.do("PUT", "/api/v1/orgs/acme/firmware/rollouts/"+rb.ID, `{"paused":false}`, nil); code != 200 {
		t.Errorf("resume: %d", code)
	}
	if res, err := d4.Check(ctx); err != nil || !res.Installed {
		t.Errorf("d4 after resume: %+v %v", res, err)
	}

	// Rollback: the director points d1, on 1.1.0, back at 1.0.0.
	w.rollout(`{"image":"watch-1.0.0.img","percent":100,"devices":["` + c1.DeviceID + `"]}`)
	_, err = d1.Check(ctx)
	if refusal(err) != firmware.RefusedRollback {
		t.Fatalf("d1 pointed back at 1.0.0: %v, want refused as rollback", err)
	}
	if v, _ := d1.Running(); v != "1.1.0" {
		t.Errorf("d1 runs %s after the refusal, want 1.1.0", v)
	}
	recs, err := w.a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "firmware.refused"})
	if err != nil || len(recs) != 1 || detail(t, recs[0], "refusal") != "rollback" || recs[0].Severity != "high" {
		t.Errorf("audit of the refusal: %v %+v", err, recs)
	}

	// A compromised server: it puts a new image in the image repository's
	// targets, signed by its online key alone, and rolls it out.
	evil := []byte("firmware nobody approved")
	tf, err := metadata.TargetFile().FromBytes("watch-9.9.9.img", evil, "sha256")
	if err != nil {
		t.Fatal(err)
	}
	cur, err := w.a.Store().GetFirmwareMeta(ctx, store.FirmwareImageRepo, metadata.TARGETS)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := metadata.Targets().FromBytes(cur.Body)
	if err != nil {
		t.Fatal(err)
	}
	forged := firmware.Image{Name: "watch-9.9.9.img", Hardware: "watch", Version: firmware.Version{Major: 9, Minor: 9, Patch: 9}, Length: tf.Length,
		SHA256: hexString(tf.Hashes["sha256"])}
	ftf, err := firmware.TargetOf(forged)
	if err != nil {
		t.Fatal(err)
	}
	tm.Signed.Version++
	tm.Signed.Targets[forged.Name] = ftf
	tm.ClearSignatures()
	tb, err := firmware.SignTargets(tm, w.online)
	if err != nil {
		t.Fatal(err)
	}
	imgs, _ := w.a.Store().ListFirmwareImages(ctx)
	up := store.FirmwareUpload{Targets: store.FirmwareMeta{Repo: store.FirmwareImageRepo, Role: metadata.TARGETS, Version: tm.Signed.Version, Body: tb, Expires: tm.Signed.Expires},
		Images: []store.FirmwareImage{{Name: forged.Name, Hardware: "watch", Version: "9.9.9", Length: tf.Length, SHA256: forged.SHA256, Bytes: evil}}, At: w.clk.Now()}
	for _, im := range imgs {
		up.Images = append(up.Images, im)
	}
	if err := w.a.Store().PutFirmwareUpload(ctx, up); err != nil {
		t.Fatal(err)
	}
	if err := w.a.Store().CreateFirmwareRollout(ctx, store.FirmwareRollout{ID: "ro_evil", OrgID: "acme", Image: forged.Name, Percent: 100,
		Devices: []string{c4.DeviceID}, CreatedAt: w.clk.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	_, err = d4.Check(ctx)
	if refusal(err) != firmware.RefusedUntrusted {
		t.Fatalf("an image signed by the online key alone: %v, want refused as untrusted", err)
	}
	if v, _ := d4.Running(); v != "1.1.0" {
		t.Errorf("d4 runs %s, want 1.1.0", v)
	}
	// And the upload path refuses the same forgery outright.
	if err := os.WriteFile(filepath.Join(w.release.Dir, "targets.json"), tb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.release.Dir, "images", forged.Name), evil, 0o644); err != nil {
		t.Fatal(err)
	}
	fb, err := w.release.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Upload(ctx, fb); !firmware.IsReleaseError(err) {
		t.Errorf("upload of targets signed by the online key: %v, want refused", err)
	}

	// Firmware outside the release set: quarantined (requirement 37).
	if err := d2.ReportRunning(ctx, "7.7.7"); err != nil {
		t.Fatal(err)
	}
	if got := quarantineOf(t, w.api, c2.DeviceID, firmware.QuarantineUnknownFirmware); got != firmware.QuarantineUnknownFirmware {
		t.Errorf("quarantine after unknown firmware: %q", got)
	}
	if got := quarantineOf(t, w.api, c3.DeviceID, ""); got != "" {
		t.Errorf("d3 (approved firmware) quarantined: %q", got)
	}
}

// TestFirmwareKnownProblemRaisesEvent: a device that stays on a version
// marked with a known problem past firmware.problem_after (24h) gets one
// high-severity security event and one firmware_problem alert.
func TestFirmwareKnownProblemRaisesEvent(t *testing.T) {
	w := newFirmwareWorld(t, vigiltest.Config(t))
	ctx := context.Background()
	c1, _ := w.device("1.0.0") // known problem
	c2, _ := w.device("1.1.0")
	events := func() []store.AuditRecord {
		recs, err := w.a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "firmware.known_problem"})
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	w.clk.Advance(23 * time.Hour)
	w.clk.Advance(10 * time.Minute)
	if n := len(events()); n != 0 {
		t.Fatalf("%d known-problem events before 24h", n)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(events()) == 0 && time.Now().Before(deadline) {
		w.clk.Advance(5 * time.Minute)
		time.Sleep(10 * time.Millisecond)
	}
	recs := events()
	if len(recs) != 1 || recs[0].ObjectID != c1.DeviceID || recs[0].Severity != "high" || detail(t, recs[0], "version") != "1.0.0" {
		t.Fatalf("known-problem events: %+v, want one for %s", recs, c1.DeviceID)
	}
	// Once only.
	w.clk.Advance(time.Hour)
	time.Sleep(50 * time.Millisecond)
	if n := len(events()); n != 1 {
		t.Errorf("%d known-problem events after another hour, want 1", n)
	}
	// And one firmware_problem alert for the device, which escalates.
	as, err := w.a.Store().ListAlerts(ctx, store.AlertFilter{OrgID: "acme", Kind: "firmware_problem"})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].DeviceID != c1.DeviceID || as[0].State != store.AlertRaised || as[0].Severity != "warning" {
		t.Errorf("firmware_problem alerts %+v, want one raised for %s", as, c1.DeviceID)
	}
	_ = c2
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func detail(t *testing.T, r store.AuditRecord, key string) string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal([]byte(r.Details), &m); err != nil {
		t.Fatalf("audit details %q: %v", r.Details, err)
	}
	return m[key]
}
