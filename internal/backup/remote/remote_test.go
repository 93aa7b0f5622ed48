package remote_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"vigil/internal/backup"
	"vigil/internal/backup/remote"
)

const token = "s3cret-token-0123456789"

// receiver starts a Receiver on loopback TLS and returns its URL, its
// directory and the PEM of its certificate (the private CA).
func receiver(t *testing.T) (string, string, []byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "host")
	rv, err := remote.NewReceiver(dir, token, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(rv)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-CA case fails handshakes on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return srv.URL + "/", dir, ca
}

// localBackup writes a small backup of three parts and returns its
// directory, the verify key and the identity.
func localBackup(t *testing.T) (string, ed25519.PublicKey, *age.X25519Identity) {
	t.Helper()
	src := t.TempDir()
	var parts []backup.Part
	for i, n := range []string{"vigil.db", "tls/ca.key", "seal.key"} {
		p := filepath.Join(src, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1)), 0o600); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, backup.Part{Name: n, Path: p, Mode: 0o600})
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	id, _ := age.GenerateX25519Identity()
	dir, err := backup.Write(filepath.Join(t.TempDir(), "staging"), time.Now(), backup.Manifest{Store: "sqlite"}, parts, id.Recipient(), key)
	if err != nil {
		t.Fatal(err)
	}
	return dir, pub, id
}

// TestUploadDownload: a backup goes up with create-only PUTs over
// verified TLS, comes back byte for byte, verifies and restores; a second
// upload of the same backup is refused (412) and changes nothing.
func TestUploadDownload(t *testing.T) {
	ctx := context.Background()
	base, hostDir, ca := receiver(t)
	dir, pub, id := localBackup(t)
	c, err := remote.NewClient(base, ca, token)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(ctx, dir); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(dir)
	stored := filepath.Join(hostDir, name)
	for _, f := range []string{backup.ManifestFile, backup.SignatureFile, "part-000.age", "part-001.age", "part-002.age"} {
		want, _ := os.ReadFile(filepath.Join(dir, f))
		got, err := os.ReadFile(filepath.Join(stored, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s on the host: %v (%d bytes, want %d)", f, err, len(got), len(want))
		}
	}
	if _, err := backup.Verify(stored, pub); err != nil {
		t.Errorf("the host's copy does not verify: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(stored, "part-000.age"))
	if err := c.Upload(ctx, dir); !errors.Is(err, remote.ErrExists) {
		t.Errorf("second upload: %v, want ErrExists", err)
	}
	if after, _ := os.ReadFile(filepath.Join(stored, "part-000.age")); !bytes.Equal(before, after) {
		t.Error("a second upload changed a stored part")
	}

	got, err := remote.Download(ctx, c.Location(name), ca, token, pub, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "restored")
	if _, err := backup.Restore(got, target, pub, id, nil); err != nil {
		t.Fatalf("restore of the downloaded backup: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "tls", "ca.key")); err != nil || len(b) != 2000 {
		t.Errorf("restored tls/ca.key: %v %d bytes", err, len(b))
	}
	if left, _ := os.ReadDir(filepath.Join(hostDir, ".incoming")); len(left) != 0 {
		t.Errorf("temp uploads left on the host: %v", left)
	}
}

// TestDownloadRefuses: another verify key fetches no part; a part
// tampered with or truncated on the host is caught by Verify; an
// untrusted certificate is refused.
func TestDownloadRefuses(t *testing.T) {
	ctx := context.Background()
	base, hostDir, ca := receiver(t)
	dir, pub, _ := localBackup(t)
	c, err := remote.NewClient(base, ca, token)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(ctx, dir); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(dir)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	into := t.TempDir()
	if _, err := remote.Download(ctx, c.Location(name), ca, token, otherPub, into); !errors.Is(err, backup.ErrSignature) {
		t.Errorf("download with another verify key: %v, want ErrSignature", err)
	}
	if parts, _ := filepath.Glob(filepath.Join(into, name, "part-*")); len(parts) != 0 {
		t.Errorf("parts fetched before the signature verified: %v", parts)
	}

	// The backup host's disk is damaged (or its operator is hostile).
	stored := filepath.Join(hostDir, name)
	b, _ := os.ReadFile(filepath.Join(stored, "part-001.age"))
	b[len(b)/2] ^= 1
	os.WriteFile(filepath.Join(stored, "part-001.age"), b, 0o600)
	b, _ = os.ReadFile(filepath.Join(stored, "part-002.age"))
	os.WriteFile(filepath.Join(stored, "part-002.age"), b[:len(b)-9], 0o600)
	got, err := remote.Download(ctx, c.Location(name), ca, token, pub, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Verify(got, pub); !errors.Is(err, backup.ErrChecksum) && !errors.Is(err, backup.ErrTruncated) {
		t.Errorf("verify of a damaged download: %v", err)
	}
	os.Remove(filepath.Join(stored, "part-001.age"))
	os.Remove(filepath.Join(stored, "part-002.age"))
	got, err = remote.Download(ctx, c.Location(name), ca, token, pub, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Verify(got, pub); !errors.Is(err, backup.ErrMissing) {
		t.Errorf("verify of a download with a missing part: %v", err)
	}

	// Without the private CA the TLS handshake fails.
	nc, err := remote.NewClient(base, nil, token)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Upload(ctx, dir); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("upload to an untrusted certificate: %v", err)
	}
}

// TestReceiverRefuses: what the receiver does not do, each with a JSON
// error naming the field.
func TestReceiverRefuses(t *testing.T) {
	base, hostDir, ca := receiver(t)
	c, err := remote.NewClient(base, ca, token)
	if err != nil {
		t.Fatal(err)
	}
	dir, _, _ := localBackup(t)
	if err := c.Upload(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(dir)
	hc := clientFor(t, ca)
	do := func(method, path, tok string, hdr map[string]string, body string) (int, string) {
		req, _ := http.NewRequest(method, strings.TrimSuffix(base, "/")+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	create := map[string]string{"If-None-Match": "*"}
	newName := "vigil-20261129T100000Z-0123abcd"
	cases := []struct {
		name, method, path, tok string
		hdr                     map[string]string
		code                    int
		field                   string
	}{
		{"no token", "GET", "/" + name + "/manifest.json", "", nil, 401, "Authorization"},
		{"wrong token", "GET", "/" + name + "/manifest.json", "s3cret-token-0123456788", nil, 401, "Authorization"},
		{"overwrite", "PUT", "/" + name + "/part-000.age", token, create, 412, "path"},
		{"overwrite the signature", "PUT", "/" + name + "/manifest.sig", token, create, 412, "path"},
		{"add to a sealed backup", "PUT", "/" + name + "/part-009.age", token, create, 409, "path"},
		{"no If-None-Match", "PUT", "/" + newName + "/part-000.age", token, nil, 428, "If-None-Match"},
		{"delete", "DELETE", "/" + name + "/part-000.age", token, nil, 405, "method"},
		{"listing the root", "GET", "/", token, nil, 404, "path"},
		{"listing a backup", "GET", "/" + name + "/", token, nil, 404, "path"},
		{"traversal", "GET", "/" + name + "/../../etc/passwd", token, nil, 404, "path"},
		{"other file name", "PUT", "/" + newName + "/notes.txt", token, create, 404, "path"},
		{"other dir name", "PUT", "/backups/part-000.age", token, create, 404, "path"},
		{"missing file", "GET", "/" + newName + "/manifest.json", token, nil, 404, "path"},
		{"too large", "PUT", "/" + newName + "/part-001.age", token, create, 413, "Content-Length"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := "x"
			if c.code == 413 {
				body = strings.Repeat("x", 1<<20+1)
			}
			code, b := do(c.method, c.path, c.tok, c.hdr, body)
			if code != c.code || !strings.Contains(b, `"field":"`+c.field+`"`) {
				t.Errorf("%s %s: %d %s, want %d naming %s", c.method, c.path, code, b, c.code, c.field)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(hostDir, name, "part-000.age")); err != nil {
		t.Errorf("the stored part is gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(hostDir, newName)); err == nil {
		ents, _ := os.ReadDir(filepath.Join(hostDir, newName))
		if len(ents) != 0 {
			t.Errorf("refused uploads stored files: %v", ents)
		}
	}
	// A new file in a backup without signature is created.
	if code, b := do("PUT", "/"+newName+"/part-000.age", token, create, "abc"); code != 201 {
		t.Errorf("create: %d %s", code, b)
	}
}

func clientFor(t *testing.T, ca []byte) *http.Client {
	t.Helper()
	c, err := remote.NewClient("https://127.0.0.1/", ca, token)
	if err != nil {
		t.Fatal(err)
	}
	return remote.HTTPClient(c)
}

// TestNewClientRefuses: only https without credentials in the URL, and a
// token.
func TestNewClientRefuses(t *testing.T) {
	for _, c := range []struct{ url, tok, want string }{
		{"http://backup.example/", token, "want https://"},
		{"https://user:pw@backup.example/", token, "no user info"},
		{"https://backup.example/?k=v", token, "no query"},
		{"https://backup.example/", "", "bearer token is required"},
		{"https:///x", token, "no host"},
	} {
		_, err := remote.NewClient(c.url, nil, c.tok)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewClient(%q): %v, want %q", c.url, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("the error echoes the password: %v", err)
		}
	}
	if _, err := remote.NewReceiver(t.TempDir(), "short", 0, nil); err == nil {
		t.Error("a receiver with a short token")
	}
}

// TestPrune keeps the newest backup of each recent day and week, never
// the newest complete one, and removes old incomplete ones only.
func TestPrune(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, complete bool) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if complete {
			os.WriteFile(filepath.Join(dir, name, backup.SignatureFile), []byte("x"), 0o600)
		}
	}
	// Sunday 29 November 2026 and the days before, two a day.
	names := []string{
		"vigil-20261129T120000Z-00000001", "vigil-20261129T060000Z-00000002",
		"vigil-20261128T120000Z-00000003", "vigil-20261128T060000Z-00000004",
		"vigil-20261127T120000Z-00000005",
		"vigil-20261122T120000Z-00000006", // previous ISO week (Sunday)
		"vigil-20261115T120000Z-00000007", // the week before
		"vigil-20261108T120000Z-00000008",
	}
	for _, n := range names {
		mk(n, true)
	}
	mk("vigil-20261129T130000Z-00000009", false) // arriving now
	mk("vigil-20261120T130000Z-0000000a", false) // abandoned
	mk("not-a-backup", false)
	now := time.Date(2026, 11, 29, 13, 30, 0, 0, time.UTC)
	mk(".incoming", false)
	for name, age := range map[string]time.Duration{"stale": 25 * time.Hour, "uploading": time.Minute} {
		p := filepath.Join(dir, ".incoming", name)
		os.WriteFile(p, []byte("x"), 0o600)
		os.Chtimes(p, now.Add(-age), now.Add(-age))
	}

	if _, err := remote.Prune(dir, now, remote.Policy{}, false); err == nil {
		t.Error("a policy keeping nothing")
	}
	res, err := remote.Prune(dir, now, remote.Policy{Daily: 2, Weekly: 3}, true)
	if err != nil {
		t.Fatal(err)
	}
	wantKept := []string{"vigil-20261129T130000Z-00000009", names[0], names[2], names[5], names[6]}
	wantRemoved := []string{".incoming/stale", names[1], names[3], names[4], "vigil-20261120T130000Z-0000000a", names[7]}
	if !slices.Equal(res.Kept, wantKept) || !slices.Equal(res.Removed, wantRemoved) {
		t.Errorf("kept %v\nremoved %v\nwant kept %v\nremoved %v", res.Kept, res.Removed, wantKept, wantRemoved)
	}
	if _, err := os.Stat(filepath.Join(dir, names[7])); err != nil {
		t.Error("a dry run removed a backup")
	}
	if _, err := os.Stat(filepath.Join(dir, ".incoming", "stale")); err != nil {
		t.Error("a dry run removed a temp upload")
	}
	if _, err := remote.Prune(dir, now, remote.Policy{Daily: 2, Weekly: 3}, false); err != nil {
		t.Fatal(err)
	}
	if inc, _ := os.ReadDir(filepath.Join(dir, ".incoming")); len(inc) != 1 || inc[0].Name() != "uploading" {
		t.Errorf("temp uploads after prune: %v (want only the recent one)", inc)
	}
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if want := slices.Sorted(slices.Values(append(wantKept, "not-a-backup", ".incoming"))); !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}
