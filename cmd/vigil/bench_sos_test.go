package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBenchSOS runs `vigil bench sos` in a tiny configuration: 20 SOS from
// 20 devices under a light background load, with a stalled console
// connected. Every SOS must reach the reading console and the webhook
// receiver exactly once. Timing is the benchmark's business, not asserted
// here.
func TestBenchSOS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server as a process; skipped with -short")
	}
	// The server child is this test binary running main (TestMain).
	t.Setenv("VIGIL_TEST_RUN_MAIN", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress strings.Builder
	res, err := benchSOS(ctx, sosConfig{SOS: 20, Rate: 40, BgRate: 200, BgDevices: 4, BgClient: "raw", BgWindow: 1,
		Stalled: 1, DataDir: t.TempDir(), Exe: os.Args[0], Warmup: 500 * time.Millisecond, Drain: 60 * time.Second,
		Progress: &progress, EventIDTag: "test"})
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, progress.String())
	}
	if res.SOS != 20 || res.Acked != 20 || res.PublishErrors != 0 {
		t.Errorf("SOS sent %d, acked %d, errors %d (%s); want 20, 20, 0", res.SOS, res.Acked, res.PublishErrors, res.FirstPublishErr)
	}
	for _, d := range []struct {
		name string
		got  sosDelivery
	}{{"console", res.Console}, {"webhook", res.Webhook}} {
		if d.got.Received != 20 || d.got.Lost != 0 || d.got.Duplicates != 0 || d.got.Latency.N != 20 {
			t.Errorf("%s: received %d, lost %d, duplicates %d, timed %d; want 20, 0, 0, 20", d.name, d.got.Received, d.got.Lost, d.got.Duplicates, d.got.Latency.N)
		}
	}
	if res.UnmatchedAlerts != 0 || res.RejectedWebhooks != 0 || res.ConsoleEnded {
		t.Errorf("unmatched alerts %d, rejected webhooks %d, console stream ended %v; want 0, 0, false", res.UnmatchedAlerts, res.RejectedWebhooks, res.ConsoleEnded)
	}
	if len(res.Stalled) != 1 || res.Stalled[0].State == "" {
		t.Errorf("stalled consoles: %+v; want one with a state", res.Stalled)
	}
	if res.BgSent <= 0 {
		t.Errorf("background positions/s %.0f; want some", res.BgSent)
	}
}

// TestBenchSOSUsage: bad flags are usage errors, before any server starts.
func TestBenchSOSUsage(t *testing.T) {
	for _, args := range [][]string{
		{"sos", "--sos", "0"},
		{"sos", "--sos-rate", "0"},
		{"sos", "--background-client", "mqtt"},
		{"sos", "--background-client", "paho", "--background-window", "2"},
		{"sos", "extra"},
	} {
		var out, errOut strings.Builder
		if code := run(context.Background(), append([]string{"bench"}, args...), func(string) string { return "" }, &out, &errOut); code != 2 {
			t.Errorf("vigil bench %v: exit %d, want 2 (stderr %q)", args, code, errOut.String())
		}
	}
}
