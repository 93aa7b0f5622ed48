package firmware_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"vigil/internal/clock"
	"vigil/internal/firmware"
)

// t0 is the tests' start of time.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// release is an offline image repository with two release keys
// (threshold 2) and images watch 1.0.0 and 1.1.0, signed.
type release struct {
	repo   firmware.Repo
	keys   []*firmware.Signer
	online *firmware.Signer
	images map[string][]byte
}

func newRelease(t testing.TB, online *firmware.Signer) *release {
	t.Helper()
	dir := t.TempDir()
	r := &release{repo: firmware.Repo{Dir: filepath.Join(dir, "repo")}, online: online, images: map[string][]byte{}}
	paths, err := r.repo.Init(firmware.InitOptions{Keys: 2, Threshold: 2, Online: online.Key(), KeyDir: filepath.Join(dir, "keys"), Expires: 365 * 24 * time.Hour}, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		k, err := firmware.ReadKeyFile(p)
		if err != nil {
			t.Fatal(err)
		}
		r.keys = append(r.keys, k)
	}
	r.add(t, "watch", "1.0.0", "firmware one point oh")
	r.add(t, "watch", "1.1.0", "firmware one point one, better")
	r.sign(t, r.keys...)
	return r
}

func (r *release) add(t testing.TB, hw, v, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	name, err := r.repo.Add(f, v, hw, false, t0.Add(180*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r.images[name] = []byte(content)
	return name
}

func (r *release) sign(t testing.TB, keys ...*firmware.Signer) {
	t.Helper()
	for _, k := range keys {
		if _, err := r.repo.Sign(k); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *release) bundle(t testing.TB) firmware.Bundle {
	t.Helper()
	b, err := r.repo.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// server is a firmware repository server on loopback HTTPS serving files
// a test puts in it, as the device sees the Vigil server.
type server struct {
	mu    sync.Mutex
	files map[string][]byte
	// stream, when set for a path, is served instead (endless data).
	stream map[string]func(w io.Writer)
	srv    *httptest.Server
	secret string
}

func newServer(t testing.TB) *server {
	s := &server{files: map[string][]byte{}, stream: map[string]func(io.Writer){}, secret: "device-secret"}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+s.secret {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		p := strings.TrimPrefix(r.URL.Path, "/firmware/v1/")
		s.mu.Lock()
		b, ok := s.files[p]
		st := s.stream[p]
		s.mu.Unlock()
		switch {
		case st != nil:
			st(w)
		case ok:
			_, _ = w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *server) put(path string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = b
}

func (s *server) del(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, path)
}

func (s *server) get(path string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[path]
}

// publishImages serves the release's roots, targets and images, with a
// snapshot and timestamp of the given version signed by the online key.
func (s *server) publishImages(t testing.TB, r *release, version int64, now time.Time) {
	t.Helper()
	b := r.bundle(t)
	for i, root := range b.Roots {
		s.put("devices/d1/images/metadata/"+itoa(i+1)+".root.json", root)
	}
	s.put("devices/d1/images/metadata/targets.json", b.Targets)
	for name, data := range b.Images {
		s.put("devices/d1/images/targets/"+name, data)
	}
	f, err := firmware.SignFreshness(r.online, b.Targets, version, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s.put("devices/d1/images/metadata/snapshot.json", f.Snapshot)
	s.put("devices/d1/images/metadata/timestamp.json", f.Timestamp)
}

// direct serves a director repository for device d1 naming images.
func (s *server) direct(t testing.TB, online *firmware.Signer, version int64, now time.Time, images ...firmware.Image) {
	t.Helper()
	root, err := firmware.DirectorRoot(online, 1, now.Add(10*365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if s.get("devices/d1/director/1.root.json") == nil {
		s.put("devices/d1/director/1.root.json", root)
	}
	tb, err := firmware.DirectorTargets(online, version, images, now.Add(7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f, err := firmware.SignFreshness(online, tb, version, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s.put("devices/d1/director/targets.json", tb)
	s.put("devices/d1/director/snapshot.json", f.Snapshot)
	s.put("devices/d1/director/timestamp.json", f.Timestamp)
}

func itoa(i int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + string(rune('0'+i))) }

// imageOf reads an image of the release as the director copies it.
func imageOf(t testing.TB, r *release, name string) firmware.Image {
	t.Helper()
	rel, err := firmware.VerifyRelease(nil, r.bundle(t), r.online.Key(), t0)
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

// device is a device's update client against s, running 1.0.0.
func device(t testing.TB, s *server, r *release, clk clock.Clock) *firmware.Client {
	t.Helper()
	droot := s.get("devices/d1/director/1.root.json")
	if droot == nil {
		t.Fatal("no director root served yet")
	}
	c, err := firmware.NewClient(firmware.ClientConfig{
		BaseURL: s.srv.URL + "/firmware/v1", DeviceID: "d1", Secret: s.secret, HTTP: s.srv.Client(),
		Dir: t.TempDir(), ImageRoot: r.bundle(t).Roots[0], DirectorRoot: droot, Hardware: "watch", Clock: clk,
	}, firmware.Version{Major: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// setup is a release, a server publishing it, the director naming
// watch-1.1.0.img, and a device on 1.0.0.
func setup(t testing.TB) (*release, *server, *clock.Manual, *firmware.Client) {
	t.Helper()
	online, err := firmware.GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	r := newRelease(t, online)
	s := newServer(t)
	clk := clock.NewManual(t0)
	s.publishImages(t, r, 1, t0)
	s.direct(t, online, 1, t0, imageOf(t, r, "watch-1.1.0.img"))
	return r, s, clk, device(t, s, r, clk)
}

func wantRefused(t testing.TB, err error, want firmware.Refusal) {
	t.Helper()
	if got := firmware.ReasonOf(err); got != want {
		t.Fatalf("update: got refusal %q (%v), want %q", got, err, want)
	}
}

func wantRunning(t testing.TB, c *firmware.Client, want string) {
	t.Helper()
	_, v, err := c.Installed()
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != want {
		t.Fatalf("running %s, want %s", v, want)
	}
}

var hexEncode = hex.EncodeToString
var _ = bytes.Equal
var _ = context.Background
var _ = metadata.ROOT

func hexOf(b []byte) string { return hexEncode(b) }

func firmwareVerify(b firmware.Bundle, r *release) (firmware.Release, error) {
	return firmware.VerifyRelease(nil, b, r.online.Key(), t0)
}
