package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// releaseRepo runs the offline pipeline: init with 2 keys of which both
// must sign, add an image, and returns the repo, the key files and the
// online key file.
func releaseRepo(t *testing.T, dataDir string) (repo string, keys []string) {
	t.Helper()
	dir := t.TempDir()
	code, out, errs := cli(t, nil, "firmware", "online-key", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, `"keytype": "ed25519"`) {
		t.Fatalf("online-key: %d %s%s", code, out, errs)
	}
	online := filepath.Join(dir, "online.pub")
	if err := os.WriteFile(online, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	repo = filepath.Join(dir, "repo")
	code, out, errs = cli(t, nil, "release", "init", "--dir", repo, "--keys", "2", "--threshold", "2", "--online-key", online)
	if code != 0 {
		t.Fatalf("release init: %d %s%s", code, out, errs)
	}
	keys = regexp.MustCompile(`key (\S+\.key)`).FindAllString(out, -1)
	for i := range keys {
		keys[i] = strings.TrimPrefix(keys[i], "key ")
		if fi, err := os.Stat(keys[i]); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file %s: %v %v, want mode 0600", keys[i], fi.Mode(), err)
		}
	}
	if len(keys) != 2 {
		t.Fatalf("init made %d key files: %s", len(keys), out)
	}
	img := filepath.Join(dir, "fw.bin")
	if err := os.WriteFile(img, []byte("watch firmware 1.1.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := cli(t, nil, "release", "add", "--dir", repo, "--file", img, "--version", "1.1.0", "--hardware", "watch"); code != 0 || !strings.Contains(out, "watch-1.1.0.img") {
		t.Fatalf("release add: %d %s%s", code, out, errs)
	}
	return repo, keys
}

func TestCLIReleaseThreshold(t *testing.T) {
	repo, keys := releaseRepo(t, t.TempDir())
	// One signature of two: not a release yet.
	if code, out, errs := cli(t, nil, "release", "sign", "--dir", repo, "--key", keys[0]); code != 0 || !strings.Contains(out, "targets version 1") {
		t.Fatalf("sign 1: %d %s%s", code, out, errs)
	}
	if code, _, errs := cli(t, nil, "release", "verify", "--dir", repo); code != 1 || !strings.Contains(errs, "not signed by the threshold") {
		t.Fatalf("verify with one signature: %d %q, want refused", code, errs)
	}
	// Signing twice with the same key changes nothing.
	if code, out, _ := cli(t, nil, "release", "sign", "--dir", repo, "--key", keys[0]); code != 0 || !strings.Contains(out, "signed everything") {
		t.Fatalf("sign 1 again: %d %s", code, out)
	}
	if code, out, errs := cli(t, nil, "release", "sign", "--dir", repo, "--key", keys[1]); code != 0 {
		t.Fatalf("sign 2: %d %s%s", code, out, errs)
	}
	if code, out, errs := cli(t, nil, "release", "verify", "--dir", repo); code != 0 || !strings.Contains(out, "watch-1.1.0.img") {
		t.Fatalf("verify: %d %s%s", code, out, errs)
	}
	// Adding an image makes a new, unsigned targets version.
	img := filepath.Join(t.TempDir(), "fw2.bin")
	if err := os.WriteFile(img, []byte("watch firmware 1.2.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli(t, nil, "release", "add", "--dir", repo, "--file", img, "--version", "1.2.0", "--hardware", "watch"); code != 0 {
		t.Fatalf("add 1.2.0: %s", errs)
	}
	if code, _, errs := cli(t, nil, "release", "verify", "--dir", repo); code != 1 || !strings.Contains(errs, "targets version 2") {
		t.Fatalf("verify after add: %d %q", code, errs)
	}
	// Rotation: new keys; the old ones sign the new root, the new ones
	// everything.
	code, out, errs := cli(t, nil, "release", "rotate", "--dir", repo, "--keys", "1", "--threshold", "1", "--key-dir", t.TempDir())
	m := regexp.MustCompile(`key (\S+\.key)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("rotate: %d %s%s", code, out, errs)
	}
	for _, k := range append(keys, m[1]) {
		if code, out, errs := cli(t, nil, "release", "sign", "--dir", repo, "--key", k); code != 0 {
			t.Fatalf("sign after rotation with %s: %d %s%s", k, code, out, errs)
		}
	}
	if code, out, errs := cli(t, nil, "release", "verify", "--dir", repo); code != 0 || !strings.Contains(out, "root version 2") {
		t.Fatalf("verify after rotation: %d %s%s", code, out, errs)
	}
	// A key file others can read is refused.
	if err := os.Chmod(keys[0], 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli(t, nil, "release", "sign", "--dir", repo, "--key", keys[0]); code != 1 || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("sign with a world-readable key: %d %q", code, errs)
	}
}

func TestCLIReleaseUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"release"}, "vigil release init"},
		{[]string{"release", "frobnicate"}, "unknown subcommand"},
		{[]string{"release", "init", "--keys", "2"}, "--dir is required"},
		{[]string{"release", "init", "--dir", dir, "--keys", "2", "--threshold", "3", "--online-key", "x"}, "threshold"},
		{[]string{"release", "init", "--dir", dir}, "--online-key is required"},
		{[]string{"release", "add", "--dir", dir, "--file", "x"}, "--version and --hardware are required"},
		{[]string{"release", "sign", "--dir", dir}, "--key is required"},
	} {
		code, _, errs := cli(t, nil, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: %d %q, want usage naming %q", tc.args, code, errs, tc.want)
		}
	}
	if code, _, errs := cli(t, nil, "release", "add", "--dir", dir, "--file", "x", "--version", "1.2", "--hardware", "watch"); code != 1 || !strings.Contains(errs, "MAJOR.MINOR.PATCH") {
		t.Errorf("add with a bad version: %d %q", code, errs)
	}
}
