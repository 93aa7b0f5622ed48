package sim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/internal/clock"
	"vigil/internal/firmware"
	"vigil/internal/sim"
)

// fwServer serves one release and one device's director on loopback and
// keeps the device's status reports.
type fwServer struct {
	mu      sync.Mutex
	files   map[string][]byte
	reports []firmware.StatusReport
}

func (s *fwServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer s3cret" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method == http.MethodPost && r.URL.Path == "/firmware/v1/devices/d1/status" {
		b, _ := io.ReadAll(r.Body)
		rep, err := firmware.DecodeReport(b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.reports = append(s.reports, rep)
		return
	}
	b, ok := s.files[strings.TrimPrefix(r.URL.Path, "/firmware/v1/devices/d1/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write(b)
}

func TestFirmwareDeviceInstallsAndReports(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	clk := clock.NewManual(now)
	online, err := firmware.GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	repo := firmware.Repo{Dir: filepath.Join(dir, "repo")}
	paths, err := repo.Init(firmware.InitOptions{Keys: 1, Threshold: 1, Online: online.Key(), KeyDir: filepath.Join(dir, "keys"), Expires: 365 * 24 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.0.0", "2.0.0"} {
		f := filepath.Join(dir, v)
		if err := os.WriteFile(f, []byte("firmware "+v), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.Add(f, v, "pendant", false, now.Add(24*time.Hour*90)); err != nil {
			t.Fatal(err)
		}
	}
	key, err := firmware.ReadKeyFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Sign(key); err != nil {
		t.Fatal(err)
	}
	b, err := repo.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := firmware.VerifyRelease(nil, b, online.Key(), now)
	if err != nil {
		t.Fatal(err)
	}
	s := &fwServer{files: map[string][]byte{"images/metadata/1.root.json": b.Roots[0], "images/metadata/targets.json": b.Targets}}
	for n, d := range b.Images {
		s.files["images/targets/"+n] = d
	}
	imgF, err := firmware.SignFreshness(online, b.Targets, 1, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s.files["images/metadata/snapshot.json"], s.files["images/metadata/timestamp.json"] = imgF.Snapshot, imgF.Timestamp
	droot, err := firmware.DirectorRoot(online, 1, now.Add(24*time.Hour*365))
	if err != nil {
		t.Fatal(err)
	}
	direct := func(v int64, img firmware.Image) {
		tb, err := firmware.DirectorTargets(online, v, []firmware.Image{img}, now.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		f, err := firmware.SignFreshness(online, tb, v, now, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		s.files["director/1.root.json"], s.files["director/targets.json"] = droot, tb
		s.files["director/snapshot.json"], s.files["director/timestamp.json"] = f.Snapshot, f.Timestamp
		s.mu.Unlock()
	}
	direct(1, rel.Images[1]) // 2.0.0
	srv := httptest.NewTLSServer(s)
	defer srv.Close()

	d, err := sim.NewFirmwareDevice(sim.FirmwareConfig{URL: srv.URL, Credential: sim.Credential{DeviceID: "d1", Secret: "s3cret"}, HTTP: srv.Client(),
		Dir: t.TempDir(), ImageRoot: b.Roots[0], DirectorRoot: droot, Hardware: "pendant", Running: "1.0.0", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := d.Check(ctx)
	if err != nil || !res.Installed {
		t.Fatalf("check: %+v %v", res, err)
	}
	if v, _ := d.Running(); v != "2.0.0" {
		t.Fatalf("running %s, want 2.0.0", v)
	}
	direct(2, rel.Images[0]) // back to 1.0.0
	if _, err := d.Check(ctx); firmware.ReasonOf(err) != firmware.RefusedRollback {
		t.Fatalf("rollback: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	got, _ := json.Marshal(s.reports)
	if len(s.reports) != 2 || s.reports[0].State != "installed" || s.reports[0].Version != "2.0.0" ||
		s.reports[1].State != "failed" || s.reports[1].Refusal != firmware.RefusedRollback || s.reports[1].Version != "2.0.0" {
		t.Fatalf("reports %s", got)
	}
}
