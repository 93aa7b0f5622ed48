package firmware_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"vigil/internal/firmware"
)

func TestVerifyReleaseAcceptsThresholdSignedRelease(t *testing.T) {
	online, _ := firmware.GenerateSigner()
	r := newRelease(t, online)
	rel, err := firmware.VerifyRelease(nil, r.bundle(t), online.Key(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rel.Images) != 2 || rel.Images[0].Version.String() != "1.0.0" || rel.Images[1].Version.String() != "1.1.0" {
		t.Fatalf("images %+v", rel.Images)
	}
	if len(rel.Roots) != 1 || rel.TargetsVersion != 1 {
		t.Fatalf("roots %d targets v%d", len(rel.Roots), rel.TargetsVersion)
	}
}

func TestVerifyReleaseRefuses(t *testing.T) {
	online, _ := firmware.GenerateSigner()
	other, _ := firmware.GenerateSigner()
	cases := []struct {
		name string
		edit func(t *testing.T, r *release) (firmware.Bundle, *metadata.Key)
		want string
	}{
		{"one signature of two", func(t *testing.T, r *release) (firmware.Bundle, *metadata.Key) {
			r.add(t, "watch", "1.2.0", "new")
			r.sign(t, r.keys[0])
			return r.bundle(t), online.Key()
		}, "not signed by the threshold"},
		{"targets signed by the online key", func(t *testing.T, r *release) (firmware.Bundle, *metadata.Key) {
			b := r.bundle(t)
			m, _ := metadata.Targets().FromBytes(b.Targets)
			m.ClearSignatures()
			b.Targets = signWith(t, m, online)
			return b, online.Key()
		}, "not signed by the threshold"},
		{"another server's online key", func(t *testing.T, r *release) (firmware.Bundle, *metadata.Key) {
			return r.bundle(t), other.Key()
		}, "online key"},
		{"image altered", func(t *testing.T, r *release) (firmware.Bundle, *metadata.Key) {
			b := r.bundle(t)
			b.Images["watch-1.1.0.img"] = []byte("firmware one point one, worse")
			return b, online.Key()
		}, "does not match"},
		{"image missing", func(t *testing.T, r *release) (firmware.Bundle, *metadata.Key) {
			b := r.bundle(t)
			delete(b.Images, "watch-1.0.0.img")
			return b, online.Key()
		}, "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelease(t, online)
			b, key := tc.edit(t, r)
			_, err := firmware.VerifyRelease(nil, b, key, t0)
			if !firmware.IsReleaseError(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a refusal saying %q", err, tc.want)
			}
		})
	}
}

// A new root must carry the old root's threshold of signatures.
func TestVerifyReleaseRootRotation(t *testing.T) {
	online, _ := firmware.GenerateSigner()
	r := newRelease(t, online)
	b := r.bundle(t)
	trusted := b.Roots[0]
	rotate := func(signers ...*firmware.Signer) []byte {
		m, err := metadata.Root().FromBytes(trusted)
		if err != nil {
			t.Fatal(err)
		}
		m.Signed.Version = 2
		m.ClearSignatures()
		b, err := firmware.SignRootForTest(m, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := b
	good.Roots = [][]byte{trusted, rotate(r.keys...)}
	if rel, err := firmware.VerifyRelease(trusted, good, online.Key(), t0); err != nil || len(rel.Roots) != 1 || rel.Roots[0].Version != 2 {
		t.Fatalf("rotation signed by both keys: %v", err)
	}
	bad := b
	bad.Roots = [][]byte{trusted, rotate(r.keys[0])}
	if _, err := firmware.VerifyRelease(trusted, bad, online.Key(), t0); !firmware.IsReleaseError(err) {
		t.Fatalf("rotation signed by one key of two: %v, want refused", err)
	}
	// An expired targets is refused too.
	if _, err := firmware.VerifyRelease(trusted, b, online.Key(), t0.Add(200*24*time.Hour)); !firmware.IsReleaseError(err) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired targets: %v", err)
	}
}

func TestParseVersionComparesNumerically(t *testing.T) {
	a, _ := firmware.ParseVersion("1.10.0")
	b, _ := firmware.ParseVersion("1.9.0")
	if a.Compare(b) != 1 || b.Compare(a) != -1 || a.Compare(a) != 0 {
		t.Fatal("1.10.0 must be newer than 1.9.0")
	}
	for _, bad := range []string{"", "1.2", "1.2.3.4", "01.2.3", "1.2.x", "1.2.3-rc1", "-1.2.3"} {
		if _, err := firmware.ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}

func TestDecodeReport(t *testing.T) {
	cases := []struct {
		body, field string
	}{
		{`{"version":"1.1.0","state":"installed"}`, "-"},
		{`{"version":"1.1.0","state":"failed","error":"boom","refusal":"frozen"}`, "-"},
		{`{"version":"1.1","state":"installed"}`, "version"},
		{`{"version":"1.1.0","state":"done"}`, "state"},
		{`{"version":"1.1.0","state":"installed","extra":1}`, "extra"},
		{`{"version":"1.1.0","state":"failed","refusal":"bored"}`, "refusal"},
		{`{"version":"1.1.0","state":"installed","error":"x"}`, "error"},
		{`{"version":1}`, "version"},
		{`{"version":"1.1.0","state":"installed"} {}`, ""},
		{`[`, ""},
	}
	for _, tc := range cases {
		_, err := firmware.DecodeReport([]byte(tc.body))
		if tc.field == "-" {
			if err != nil {
				t.Errorf("%s: %v", tc.body, err)
			}
			continue
		}
		fe, ok := err.(*firmware.FieldError)
		if !ok || fe.Field != tc.field {
			t.Errorf("%s: got %v, want an error naming field %q", tc.body, err, tc.field)
		}
	}
}

// Rotating the release keys: the new root needs the old threshold and its
// own; afterwards only the new keys sign releases, and a device that
// trusts root 1 follows the rotation.
func TestRepoRotateKeys(t *testing.T) {
	r, s, clk, c := setup(t)
	if _, err := c.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	trusted := r.bundle(t).Roots[0]
	paths, err := r.repo.Rotate(2, 2, t.TempDir(), 365*24*time.Hour, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	var fresh []*firmware.Signer
	for _, p := range paths {
		k, err := firmware.ReadKeyFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fresh = append(fresh, k)
	}
	// The new keys alone: root 2 lacks the old threshold.
	r.sign(t, fresh...)
	if _, err := firmware.VerifyRelease(trusted, r.bundle(t), r.online.Key(), clk.Now()); !firmware.IsReleaseError(err) || !strings.Contains(err.Error(), "root version 1") {
		t.Fatalf("rotation signed by the new keys only: %v", err)
	}
	r.sign(t, r.keys...) // the old keys sign root 2 (not the targets: no longer theirs)
	rel, err := firmware.VerifyRelease(trusted, r.bundle(t), r.online.Key(), clk.Now())
	if err != nil || rel.Root.Signed.Version != 2 || rel.TargetsVersion != 2 {
		t.Fatalf("rotation: %+v %v", rel.Root, err)
	}
	// A device that trusts root 1 walks to root 2 and verifies targets 2.
	r.add(t, "watch", "1.2.0", "one point two")
	r.sign(t, fresh...)
	s.publishImages(t, r, 2, clk.Now())
	s.direct(t, r.online, 2, clk.Now(), imageOf2(t, r, "watch-1.2.0.img"))
	res, err := c.Update(context.Background())
	if err != nil || !res.Installed || res.Version.String() != "1.2.0" {
		t.Fatalf("update after the rotation: %+v %v", res, err)
	}
}

// imageOf2 reads an image of a release whose roots rotated.
func imageOf2(t *testing.T, r *release, name string) firmware.Image {
	t.Helper()
	b := r.bundle(t)
	rel, err := firmware.VerifyRelease(b.Roots[0], b, r.online.Key(), t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range rel.Images {
		if im.Name == name {
			return im
		}
	}
	t.Fatalf("no image %s", name)
	return firmware.Image{}
}
