package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestCLIFirmwareUploadRolloutCompliance(t *testing.T) {
	data := t.TempDir()
	repo, keys := releaseRepo(t, data)
	for _, k := range keys {
		if code, _, errs := cli(t, nil, "release", "sign", "--dir", repo, "--key", k); code != 0 {
			t.Fatalf("sign: %s", errs)
		}
	}
	// The first upload asks for the root keys to be confirmed.
	code, _, errs := cli(t, nil, "firmware", "upload", "--data-dir", data, "--dir", repo)
	m := regexp.MustCompile(`--trust-root (\S+)`).FindStringSubmatch(errs)
	if code != 2 || m == nil {
		t.Fatalf("first upload without --trust-root: %d %q", code, errs)
	}
	if code, _, errs := cli(t, nil, "firmware", "upload", "--data-dir", data, "--dir", repo, "--trust-root", "deadbeef"); code != 2 {
		t.Fatalf("first upload with wrong key ids: %d %q", code, errs)
	}
	if code, out, errs := cli(t, nil, "firmware", "upload", "--data-dir", data, "--dir", repo, "--trust-root", m[1]); code != 0 || !strings.Contains(out, "targets version 1") {
		t.Fatalf("upload: %d %s%s", code, out, errs)
	}
	if code, _, errs := cli(t, nil, "firmware", "upload", "--data-dir", data, "--dir", repo); code != 1 || !strings.Contains(errs, "already uploaded") {
		t.Fatalf("upload again: %d %q", code, errs)
	}
	code, out, errs := cli(t, nil, "firmware", "list", "--data-dir", data, "--json")
	var list struct {
		Images []struct{ Name, Version string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Images) != 1 || list.Images[0].Version != "1.1.0" {
		t.Fatalf("list: %d %s%s", code, out, errs)
	}

	if code, _, errs := cli(t, nil, "org", "add", "--data-dir", data, "--id", "acme", "--name", "Acme Care"); code != 0 {
		t.Fatalf("org add: %s", errs)
	}
	if code, _, errs := cli(t, nil, "device", "add", "--data-dir", data, "--org", "acme", "--name", "p1"); code != 0 {
		t.Fatalf("device add: %s", errs)
	}
	if code, _, errs := cli(t, nil, "firmware", "rollout", "create", "--data-dir", data, "--org", "acme", "--image", "watch-9.9.9.img", "--percent", "10"); code != 2 || !strings.Contains(errs, "--image") {
		t.Errorf("rollout of an unknown image: %d %q", code, errs)
	}
	code, out, errs = cli(t, nil, "firmware", "rollout", "create", "--data-dir", data, "--org", "acme", "--image", "watch-1.1.0.img", "--percent", "25")
	id := regexp.MustCompile(`rollout (ro_\S+):`).FindStringSubmatch(out)
	if code != 0 || id == nil {
		t.Fatalf("rollout create: %d %s%s", code, out, errs)
	}
	if code, _, errs := cli(t, nil, "firmware", "rollout", "set", "--data-dir", data, "--org", "acme", "--id", id[1], "--percent", "10"); code != 2 || !strings.Contains(errs, "--percent 10") {
		t.Errorf("lower the percentage: %d %q", code, errs)
	}
	if code, out, errs := cli(t, nil, "firmware", "rollout", "set", "--data-dir", data, "--org", "acme", "--id", id[1], "--percent", "50", "--pause"); code != 0 || !strings.Contains(out, "50%, paused true") {
		t.Errorf("raise and pause: %d %s%s", code, out, errs)
	}
	if code, out, _ := cli(t, nil, "firmware", "rollout", "list", "--data-dir", data, "--org", "acme"); code != 0 || !strings.Contains(out, "paused (manual)") {
		t.Errorf("rollout list: %d %s", code, out)
	}
	code, out, errs = cli(t, nil, "firmware", "compliance", "--data-dir", data, "--org", "acme")
	if code != 0 || !strings.Contains(out, "never") || !strings.Contains(out, "not approved") {
		t.Errorf("compliance: %d %s%s", code, out, errs)
	}
	if code, _, errs := cli(t, nil, "firmware", "compliance", "--data-dir", data); code != 2 || !strings.Contains(errs, "--org is required") {
		t.Errorf("compliance without --org: %d %q", code, errs)
	}
	if code, out, errs := cli(t, nil, "firmware", "roots", "--data-dir", data, "--out", t.TempDir()); code != 0 || !strings.Contains(out, "director-root.json") {
		t.Errorf("roots: %d %s%s", code, out, errs)
	}
}
