package main

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fallData holds two real SisFall recordings: one fall, one daily activity.
const fallData = "../../internal/fall/testdata/sisfall"

func TestCLIFallEvalJSON(t *testing.T) {
	plot := filepath.Join(t.TempDir(), "roc.png")
	code, out, errs := cli(t, nil, "fall", "eval", "--data", fallData, "--rate", "50", "--json", "--plot", plot)
	if code != 0 {
		t.Fatalf("fall eval: %d %s", code, errs)
	}
	if errs != "" {
		t.Errorf("--json wrote to stderr: %q", errs)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"files", "falls", "adls", "sensitivity", "specificity", "balanced_accuracy", "f1",
		"false_alarms_per_hour", "latency_p50_ms", "latency_p95_ms", "young", "elderly", "activities", "baseline", "sensitivity_sweep"} {
		if _, ok := got[k]; !ok {
			t.Errorf("key %q missing", k)
		}
	}
	if got["files"] != 2.0 || got["falls"] != 1.0 || got["adls"] != 1.0 || got["sensitivity"] != 1.0 || got["specificity"] != 1.0 {
		t.Errorf("counts and rates: %v", got)
	}
	young, _ := got["young"].(map[string]any)
	if young["falls"] != 1.0 || young["latency_p95_ms"] == nil {
		t.Errorf("young: %v", young)
	}
	acts, _ := got["activities"].([]any)
	if len(acts) != 2 {
		t.Errorf("activities: %v", acts)
	}
	fh, err := os.Open(plot)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := png.Decode(fh); err != nil {
		t.Errorf("plot: %v", err)
	}
}

func TestCLIFallTableAndModel(t *testing.T) {
	code, out, errs := cli(t, nil, "fall", "eval", "--data", fallData, "--rate", "200")
	if code != 0 || !strings.Contains(out, "elderly (SE)") || !strings.Contains(errs, "2/2") {
		t.Fatalf("fall eval table: %d %q %q", code, out, errs)
	}
	bad := filepath.Join(t.TempDir(), "model.json")
	if err := os.WriteFile(bad, []byte(`{"format":"other"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli(t, nil, "fall", "eval", "--data", fallData, "--model", bad); code != 1 || !strings.Contains(errs, "invalid model") {
		t.Errorf("bad model: %d %q", code, errs)
	}
}

func TestCLIFallUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"fall"}, "vigil fall"},
		{[]string{"fall", "fly"}, "unknown subcommand"},
		{[]string{"fall", "train", "--data", fallData}, "--out FILE or --cv K"},
		{[]string{"fall", "eval"}, "--data is required"},
		{[]string{"fall", "eval", "--data", fallData, "--rate", "60"}, "divisor of 200"},
	}
	for _, tt := range tests {
		code, _, errs := cli(t, nil, tt.args...)
		if code == 0 || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: %d %q, want an error containing %q", tt.args, code, errs, tt.want)
		}
	}
}
