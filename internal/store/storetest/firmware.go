package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/store"
)

func testFirmware(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)

	// Nothing before the first upload.
	_, err := s.GetFirmwareMeta(ctx, store.FirmwareImageRepo, "targets")
	mustErr(t, err, store.ErrNotFound, "targets before upload")
	roots, err := s.ListFirmwareRoots(ctx, store.FirmwareImageRepo)
	must(t, err, "list roots")
	if len(roots) != 0 {
		t.Fatalf("roots before upload: %d", len(roots))
	}

	root1 := store.FirmwareMeta{Repo: store.FirmwareImageRepo, Role: "root", Version: 1, Body: []byte(`{"root":1}`), Expires: at(365 * 24 * time.Hour), UpdatedAt: at(0)}
	img1 := store.FirmwareImage{Name: "watch-1.0.0.img", Hardware: "watch", Version: "1.0.0", Length: 3, SHA256: "aa", TargetsVersion: 1, CreatedAt: at(0), Bytes: []byte{1, 2, 3}}
	img2 := store.FirmwareImage{Name: "watch-1.1.0.img", Hardware: "watch", Version: "1.1.0", Length: 2, SHA256: "bb", TargetsVersion: 1, CreatedAt: at(0), Bytes: []byte{4, 5}}
	up1 := store.FirmwareUpload{Roots: []store.FirmwareMeta{root1},
		Targets: store.FirmwareMeta{Repo: store.FirmwareImageRepo, Role: "targets", Version: 1, Body: []byte(`{"targets":1}`), Expires: at(time.Hour), UpdatedAt: at(0)},
		Images:  []store.FirmwareImage{img1, img2}, At: at(0)}
	must(t, s.PutFirmwareUpload(ctx, up1), "upload 1")

	roots, err = s.ListFirmwareRoots(ctx, store.FirmwareImageRepo)
	must(t, err, "list roots")
	if diff := cmp.Diff([]store.FirmwareMeta{root1}, roots, opts); diff != "" {
		t.Errorf("roots (-want +got):\n%s", diff)
	}
	tm, err := s.GetFirmwareMeta(ctx, store.FirmwareImageRepo, "targets")
	must(t, err, "get targets")
	if tm.Version != 1 || string(tm.Body) != `{"targets":1}` || !sameTime(tm.Expires, at(time.Hour)) {
		t.Errorf("targets %+v", tm)
	}
	got, err := s.GetFirmwareImage(ctx, "watch-1.1.0.img")
	must(t, err, "get image")
	if diff := cmp.Diff(img2, got, opts); diff != "" {
		t.Errorf("image (-want +got):\n%s", diff)
	}
	_, err = s.GetFirmwareImage(ctx, "watch-9.0.0.img")
	mustErr(t, err, store.ErrNotFound, "unknown image")

	// The same or an older targets version is refused; so is an image
	// name with other bytes, and another root of a stored version.
	mustErr(t, s.PutFirmwareUpload(ctx, up1), store.ErrConflict, "upload 1 again")
	up2 := up1
	up2.Roots = nil
	up2.Targets.Version, up2.Targets.Body = 2, []byte(`{"targets":2}`)
	bad := img1
	bad.SHA256 = "cc"
	up2.Images = []store.FirmwareImage{bad}
	mustErr(t, s.PutFirmwareUpload(ctx, up2), store.ErrConflict, "image with other bytes")
	up2.Roots = []store.FirmwareMeta{{Repo: store.FirmwareImageRepo, Role: "root", Version: 1, Body: []byte(`{"root":"forged"}`), UpdatedAt: at(0)}}
	up2.Images = nil
	mustErr(t, s.PutFirmwareUpload(ctx, up2), store.ErrConflict, "another root 1")
	// Targets 2 drops 1.0.0 and marks 1.1.0 with a known problem.
	img2b := img2
	img2b.KnownProblem, img2b.TargetsVersion = true, 2
	up2.Roots = []store.FirmwareMeta{root1, {Repo: store.FirmwareImageRepo, Role: "root", Version: 2, Body: []byte(`{"root":2}`), UpdatedAt: at(time.Minute)}}
	up2.Images, up2.At = []store.FirmwareImage{img2b}, at(time.Minute)
	must(t, s.PutFirmwareUpload(ctx, up2), "upload 2")
	images, err := s.ListFirmwareImages(ctx)
	must(t, err, "list images")
	img1.Bytes, img2b.Bytes = nil, nil
	if diff := cmp.Diff([]store.FirmwareImage{img1, img2b}, images, opts); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	roots, err = s.ListFirmwareRoots(ctx, store.FirmwareImageRepo)
	must(t, err, "list roots")
	if len(roots) != 2 || roots[1].Version != 2 {
		t.Errorf("roots after rotation: %+v", roots)
	}

	// Server-signed metadata: replaced in place, per repository.
	dev1 := store.FirmwareDirectorOf("d1")
	ms := []store.FirmwareMeta{
		{Repo: dev1, Role: "targets", Version: 1, Body: []byte("t1"), Covers: "c1", Expires: at(time.Hour), UpdatedAt: at(0)},
		{Repo: dev1, Role: "timestamp", Version: 1, Body: []byte("ts1"), Covers: "c1", Expires: at(time.Hour), UpdatedAt: at(0)},
	}
	must(t, s.PutFirmwareMetas(ctx, ms), "put metas")
	ms[1].Version, ms[1].Body = 2, []byte("ts2")
	must(t, s.PutFirmwareMetas(ctx, ms[1:]), "put metas again")
	gm, err := s.GetFirmwareMeta(ctx, dev1, "timestamp")
	must(t, err, "get timestamp")
	if diff := cmp.Diff(ms[1], gm, opts); diff != "" {
		t.Errorf("timestamp (-want +got):\n%s", diff)
	}
	_, err = s.GetFirmwareMeta(ctx, store.FirmwareDirectorOf("d2"), "timestamp")
	mustErr(t, err, store.ErrNotFound, "another device's director")
	droot := store.FirmwareMeta{Repo: store.FirmwareDirectorRepo, Role: "root", Version: 1, Body: []byte("d"), UpdatedAt: at(0)}
	must(t, s.PutFirmwareRoot(ctx, droot), "put director root")
	must(t, s.PutFirmwareRoot(ctx, store.FirmwareMeta{Repo: store.FirmwareDirectorRepo, Role: "root", Version: 1, Body: []byte("other"), UpdatedAt: at(0)}), "put director root again")
	droots, err := s.ListFirmwareRoots(ctx, store.FirmwareDirectorRepo)
	must(t, err, "list director roots")
	if len(droots) != 1 || string(droots[0].Body) != "d" {
		t.Errorf("director roots %+v: the first one stays", droots)
	}

	// Rollouts.
	r1 := store.FirmwareRollout{ID: "r1", OrgID: "acme", Name: "pilot", Image: "watch-1.1.0.img", Devices: []string{"d1", "d2"}, Percent: 50,
		PauseFailures: 3, PausePercent: 20, CreatedBy: "u1", CreatedAt: at(time.Hour), UpdatedAt: at(time.Hour)}
	must(t, s.CreateFirmwareRollout(ctx, r1), "create rollout")
	r2 := store.FirmwareRollout{ID: "r2", OrgID: "acme", Image: "watch-1.0.0.img", Percent: 100, CreatedAt: at(2 * time.Hour), UpdatedAt: at(2 * time.Hour)}
	must(t, s.CreateFirmwareRollout(ctx, r2), "create rollout 2")
	must(t, s.CreateFirmwareRollout(ctx, store.FirmwareRollout{ID: "r9", OrgID: "beta", Image: "watch-1.1.0.img", Percent: 10, CreatedAt: at(0)}), "create beta rollout")
	mustErr(t, s.CreateFirmwareRollout(ctx, r1), store.ErrConflict, "create rollout twice")
	mustErr(t, s.CreateFirmwareRollout(ctx, store.FirmwareRollout{ID: "rx", OrgID: "acme", Image: "nope.img", CreatedAt: at(0)}), store.ErrNotFound, "rollout of an unknown image")
	list, err := s.ListFirmwareRollouts(ctx, "acme")
	must(t, err, "list rollouts")
	if diff := cmp.Diff([]store.FirmwareRollout{r2, r1}, list, opts); diff != "" {
		t.Errorf("rollouts (-want +got):\n%s", diff)
	}
	all, err := s.ListFirmwareRollouts(ctx, "")
	must(t, err, "list all rollouts")
	if len(all) != 3 {
		t.Errorf("all rollouts: %d, want 3", len(all))
	}
	r1.Percent, r1.Paused, r1.PausedReason, r1.UpdatedAt = 80, true, "manual", at(3*time.Hour)
	must(t, s.UpdateFirmwareRollout(ctx, r1), "update rollout")
	mustErr(t, s.UpdateFirmwareRollout(ctx, store.FirmwareRollout{ID: "nope"}), store.ErrNotFound, "update unknown rollout")

	// Device reports.
	st := store.FirmwareDeviceStatus{DeviceID: "d1", OrgID: "acme", Version: "1.0.0", State: "checking", CheckedAt: at(time.Hour)}
	prev, err := s.RecordFirmwareStatus(ctx, st)
	must(t, err, "record status")
	if prev.DeviceID != "" {
		t.Errorf("first report had a previous state %+v", prev)
	}
	st2 := store.FirmwareDeviceStatus{DeviceID: "d1", OrgID: "acme", Version: "1.1.0", State: "installed", RolloutID: "r1", CheckedAt: at(2 * time.Hour)}
	prev, err = s.RecordFirmwareStatus(ctx, st2)
	must(t, err, "record installed")
	if prev.Version != "1.0.0" {
		t.Errorf("previous %+v", prev)
	}
	must(t, s.MarkFirmwareProblemReported(ctx, "d1", at(3*time.Hour)), "mark problem")
	st3 := st2
	st3.State, st3.CheckedAt = "checking", at(4*time.Hour)
	_, err = s.RecordFirmwareStatus(ctx, st3)
	must(t, err, "record again on the same version")
	_, err = s.RecordFirmwareStatus(ctx, store.FirmwareDeviceStatus{DeviceID: "d2", OrgID: "acme", Version: "1.0.0", State: "failed",
		Error: "flash write failed", Refusal: "", RolloutID: "r1", CheckedAt: at(2 * time.Hour)})
	must(t, err, "record failed")
	_, err = s.RecordFirmwareStatus(ctx, store.FirmwareDeviceStatus{DeviceID: "d9", OrgID: "beta", Version: "1.0.0", State: "checking", CheckedAt: at(0)})
	must(t, err, "record beta")
	mustErr(t, s.MarkFirmwareProblemReported(ctx, "d404", at(0)), store.ErrNotFound, "mark unknown device")

	got1, err := s.GetFirmwareRollout(ctx, "r1")
	must(t, err, "get rollout")
	r1.Installed, r1.Failed = 1, 1
	if diff := cmp.Diff(r1, got1, opts); diff != "" {
		t.Errorf("rollout with counts (-want +got):\n%s", diff)
	}
	_, err = s.GetFirmwareRollout(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get unknown rollout")

	sts, err := s.ListFirmwareStatus(ctx, "acme")
	must(t, err, "list status")
	want := []store.FirmwareDeviceStatus{
		{DeviceID: "d1", OrgID: "acme", Version: "1.1.0", State: "checking", RolloutID: "r1", CheckedAt: at(4 * time.Hour), VersionSince: at(2 * time.Hour), ProblemReportedAt: at(3 * time.Hour)},
		{DeviceID: "d2", OrgID: "acme", Version: "1.0.0", State: "failed", Error: "flash write failed", RolloutID: "r1", CheckedAt: at(2 * time.Hour), VersionSince: at(2 * time.Hour)},
	}
	if diff := cmp.Diff(want, sts, opts); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if d := device(t, s, "d1"); d.Firmware != "1.1.0" {
		t.Errorf("device d1 firmware %q, want 1.1.0", d.Firmware)
	}
	// A new version restarts VersionSince and clears the reported problem.
	_, err = s.RecordFirmwareStatus(ctx, store.FirmwareDeviceStatus{DeviceID: "d1", OrgID: "acme", Version: "1.2.0", State: "installed", CheckedAt: at(5 * time.Hour)})
	must(t, err, "record new version")
	sts, err = s.ListFirmwareStatus(ctx, "")
	must(t, err, "list all status")
	if len(sts) != 3 || !sameTime(sts[0].VersionSince, at(5*time.Hour)) || !sts[0].ProblemReportedAt.IsZero() {
		t.Errorf("after a new version: %+v", sts)
	}
	_, err = s.RecordFirmwareStatus(ctx, store.FirmwareDeviceStatus{DeviceID: "nobody", OrgID: "acme", Version: "1.0.0", State: "checking", CheckedAt: at(0)})
	mustErr(t, err, store.ErrNotFound, "status of an unknown device")
}

func sameTime(a, b time.Time) bool {
	return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond))
}
