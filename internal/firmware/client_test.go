package firmware_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"vigil/internal/firmware"
)

func TestUpdateInstallsTheDirectorsApprovedChoice(t *testing.T) {
	r, _, _, c := setup(t)
	res, err := c.Update(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Installed || res.Version.String() != "1.1.0" {
		t.Fatalf("got %+v, want 1.1.0 installed", res)
	}
	if got, want := res.Data["watch-1.1.0.img"], r.images["watch-1.1.0.img"]; !bytes.Equal(got, want) {
		t.Fatalf("installed %q, want %q", got, want)
	}
	wantRunning(t, c, "1.1.0")
	// The same choice again: nothing to do.
	res, err = c.Update(context.Background())
	if err != nil || res.Installed {
		t.Fatalf("second check: %+v, %v; want nothing installed", res, err)
	}
}

// Row 33 (a): the server replays an older targets and snapshot (and the
// timestamp that went with them) → rollback.
func TestRefuseReplayedMetadata(t *testing.T) {
	r, s, clk, c := setup(t)
	old := map[string][]byte{}
	for _, f := range []string{"targets.json", "snapshot.json", "timestamp.json"} {
		old[f] = s.get("devices/d1/images/metadata/" + f)
	}
	// A new release (targets version 2) is published and installed.
	r.add(t, "watch", "1.2.0", "one point two")
	r.sign(t, r.keys...)
	s.publishImages(t, r, 2, clk.Now())
	s.direct(t, r.online, 2, clk.Now(), imageOf(t, r, "watch-1.2.0.img"))
	if _, err := c.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantRunning(t, c, "1.2.0")
	// Now the old image metadata is served again.
	for f, b := range old {
		s.put("devices/d1/images/metadata/"+f, b)
	}
	s.direct(t, r.online, 3, clk.Now(), imageOf(t, r, "watch-1.1.0.img"))
	_, err := c.Update(context.Background())
	wantRefused(t, err, firmware.RefusedRollback)
	wantRunning(t, c, "1.2.0")
}

// The director (the online key) points a device running 1.1.0 back at
// 1.0.0, which is approved but older → rollback.
func TestRefuseOlderVersion(t *testing.T) {
	r, s, clk, c := setup(t)
	if _, err := c.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.direct(t, r.online, 2, clk.Now(), imageOf(t, r, "watch-1.0.0.img"))
	_, err := c.Update(context.Background())
	wantRefused(t, err, firmware.RefusedRollback)
	wantRunning(t, c, "1.1.0")
}

// Row 33 (b): unchanged metadata served past the timestamp's expiry →
// frozen.
func TestRefuseFrozenMetadata(t *testing.T) {
	_, _, clk, c := setup(t)
	clk.Advance(25 * time.Hour)
	_, err := c.Update(context.Background())
	wantRefused(t, err, firmware.RefusedFrozen)
	wantRunning(t, c, "1.0.0")
}

// Row 33 (c): a new targets with the old snapshot → mixed snapshot.
func TestRefuseMixedSnapshot(t *testing.T) {
	r, s, _, c := setup(t)
	r.add(t, "watch", "1.2.0", "one point two")
	r.sign(t, r.keys...)
	b := r.bundle(t)
	s.put("devices/d1/images/metadata/targets.json", b.Targets) // version 2; snapshot still says 1
	s.put("devices/d1/images/targets/watch-1.2.0.img", b.Images["watch-1.2.0.img"])
	_, err := c.Update(context.Background())
	wantRefused(t, err, firmware.RefusedMixed)
	wantRunning(t, c, "1.0.0")
}

// Row 33 (d): an image longer than declared: the download stops at the
// declared length and nothing is installed.
func TestRefuseEndlessImage(t *testing.T) {
	r, s, _, c := setup(t)
	good := r.images["watch-1.1.0.img"]
	sent := make(chan int64, 1)
	s.mu.Lock()
	s.stream["devices/d1/images/targets/watch-1.1.0.img"] = func(w io.Writer) {
		var n int64
		chunk := bytes.Repeat([]byte("x"), 1024)
		_, _ = w.Write(good)
		for n < 64<<20 { // endless, as far as the device can tell
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		sent <- n
	}
	s.mu.Unlock()
	_, err := c.Update(context.Background())
	wantRefused(t, err, firmware.RefusedOversize)
	wantRunning(t, c, "1.0.0")
	if n := <-sent; n >= 64<<20 {
		t.Fatalf("the server wrote all %d bytes: the device did not abort", n)
	}
}

// Row 33 (e): an image signed by the server's online key alone: the
// online key signs an image targets naming a new image (and snapshot and
// timestamp over it) and the director points at it → untrusted.
func TestRefuseImageSignedByOnlineKeyAlone(t *testing.T) {
	r, s, clk, c := setup(t)
	evil := []byte("firmware nobody approved")
	tf, err := metadata.TargetFile().FromBytes("watch-9.9.9.img", evil, "sha256")
	if err != nil {
		t.Fatal(err)
	}
	cur, err := metadata.Targets().FromBytes(s.get("devices/d1/images/metadata/targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	forged := firmware.Image{Name: "watch-9.9.9.img", Hardware: "watch", Version: firmware.Version{Major: 9, Minor: 9, Patch: 9}, Length: tf.Length}
	ftf, err := firmware.TargetOf(withSHA(forged, tf))
	if err != nil {
		t.Fatal(err)
	}
	cur.Signed.Version++
	cur.Signed.Targets["watch-9.9.9.img"] = ftf
	cur.ClearSignatures()
	tb := signWith(t, cur, r.online)
	s.put("devices/d1/images/metadata/targets.json", tb)
	s.put("devices/d1/images/targets/watch-9.9.9.img", evil)
	f, err := firmware.SignFreshness(r.online, tb, 2, clk.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s.put("devices/d1/images/metadata/snapshot.json", f.Snapshot)
	s.put("devices/d1/images/metadata/timestamp.json", f.Timestamp)
	s.direct(t, r.online, 2, clk.Now(), withSHA(forged, tf))
	_, err = c.Update(context.Background())
	wantRefused(t, err, firmware.RefusedUntrusted)
	wantRunning(t, c, "1.0.0")
}

// The director names an image the image repository does not list (the
// online key alone "approved" it) → not approved.
func TestRefuseImageOnlyTheDirectorNames(t *testing.T) {
	r, s, clk, c := setup(t)
	evil := []byte("firmware nobody approved")
	tf, err := metadata.TargetFile().FromBytes("watch-9.9.9.img", evil, "sha256")
	if err != nil {
		t.Fatal(err)
	}
	forged := withSHA(firmware.Image{Name: "watch-9.9.9.img", Hardware: "watch", Version: firmware.Version{Major: 9, Minor: 9, Patch: 9}, Length: tf.Length}, tf)
	s.put("devices/d1/images/targets/watch-9.9.9.img", evil)
	s.direct(t, r.online, 2, clk.Now(), forged)
	_, err = c.Update(context.Background())
	wantRefused(t, err, firmware.RefusedNotApproved)
	// Same name as an approved image, other bytes.
	good := imageOf(t, r, "watch-1.1.0.img")
	bad := good
	bad.SHA256, bad.Length = forged.SHA256, forged.Length
	s.direct(t, r.online, 3, clk.Now(), bad)
	_, err = c.Update(context.Background())
	wantRefused(t, err, firmware.RefusedNotApproved)
	wantRunning(t, c, "1.0.0")
}

// Row 33 (f): a bundle of two images with one dropped → nothing
// installed.
func TestPartialBundleInstallsNothing(t *testing.T) {
	r, s, clk, c := setup(t)
	r.add(t, "watch.modem", "1.1.0", "modem firmware")
	r.sign(t, r.keys...)
	s.publishImages(t, r, 2, clk.Now())
	s.direct(t, r.online, 2, clk.Now(), imageOf(t, r, "watch-1.1.0.img"), imageOf(t, r, "watch.modem-1.1.0.img"))
	s.del("devices/d1/images/targets/watch.modem-1.1.0.img")
	_, err := c.Update(context.Background())
	wantRefused(t, err, firmware.RefusedIncomplete)
	wantRunning(t, c, "1.0.0")
	// Served whole, the bundle installs.
	s.put("devices/d1/images/targets/watch.modem-1.1.0.img", r.images["watch.modem-1.1.0.img"])
	res, err := c.Update(context.Background())
	if err != nil || !res.Installed || len(res.Data) != 2 {
		t.Fatalf("whole bundle: %+v, %v; want both installed", res, err)
	}
}

// An image for other hardware is refused.
func TestRefuseOtherHardware(t *testing.T) {
	r, s, clk, c := setup(t)
	r.add(t, "pendant", "2.0.0", "pendant firmware")
	r.sign(t, r.keys...)
	s.publishImages(t, r, 2, clk.Now())
	s.direct(t, r.online, 2, clk.Now(), imageOf(t, r, "pendant-2.0.0.img"))
	_, err := c.Update(context.Background())
	wantRefused(t, err, firmware.RefusedHardware)
}

func withSHA(im firmware.Image, tf *metadata.TargetFiles) firmware.Image {
	im.SHA256 = hexOf(tf.Hashes["sha256"])
	return im
}

func signWith(t testing.TB, m *metadata.Metadata[metadata.TargetsType], s *firmware.Signer) []byte {
	t.Helper()
	b, err := firmware.SignTargetsForTest(m, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
