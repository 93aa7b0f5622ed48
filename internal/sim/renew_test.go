package sim_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"testing"
	"time"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/enrol"
	"vigil/internal/event"
	"vigil/internal/pki"
	"vigil/internal/sim"
	"vigil/internal/vigiltest"
)

// TestRunnerRenewsNearExpiry: an enrolled simulated device whose
// certificate has less than 30 days left renews it (new key) before it
// connects, then sends over MQTT with mutual TLS on the new certificate.
// One with more left does not renew.
func TestRunnerRenewsNearExpiry(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.MQTT.ClientCerts = "required"
	clk := clock.NewManual(time.Now().UTC().Truncate(time.Second))
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk, Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	if err := a.Devices().EnsureOrg(ctx, "acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	tlsCfg := vigiltest.ClientTLS(t, a)
	enrolOne := func(name string) (string, *tls.Certificate) {
		c, err := a.Devices().Register(ctx, "acme", name)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := enrol.NewToken(ctx, a.Store(), clk.Now(), c.DeviceID, 0)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := sim.Enrol(ctx, a.Addr("https"), tlsCfg, c.DeviceID, tok.Value)
		if err != nil {
			t.Fatal(err)
		}
		return c.DeviceID, cert
	}
	old, oldCert := enrolOne("old pendant")
	clk.Advance(335 * 24 * time.Hour) // old: then a minute below 30 days left
	clk.Advance(time.Minute)
	fresh, freshCert := enrolOne("fresh pendant")
	if !sim.NeedsRenewal(oldCert, clk.Now(), sim.RenewBefore) || sim.NeedsRenewal(freshCert, clk.Now(), sim.RenewBefore) {
		t.Fatal("NeedsRenewal disagrees with the certificates' lifetimes")
	}

	s, err := sim.New(sim.Config{
		MQTTAddr: a.Addr("mqtt"), HTTPSAddr: a.Addr("https"), TLS: tlsCfg, Now: clk.Now,
		Devices:        []sim.Credential{{DeviceID: old}, {DeviceID: fresh}},
		Certs:          map[string]*tls.Certificate{old: oldCert, fresh: freshCert},
		HeartbeatEvery: 50 * time.Millisecond, RetryMin: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	// Polls the simulator's progress; it asserts no duration.
	deadline := time.Now().Add(15 * time.Second)
	for s.Stats().AckedByType[event.TypeHeartbeat] < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	st := s.Stats()
	if st.Renewed != 1 || st.RenewErrors != 0 {
		t.Errorf("renewed %d, errors %d, want 1 and 0", st.Renewed, st.RenewErrors)
	}
	renewed := s.Cert(old)
	if renewed == nil || renewed.Leaf.NotAfter.Sub(clk.Now()) < 364*24*time.Hour {
		t.Fatalf("the old device's certificate was not renewed: %+v", renewed)
	}
	d, err := a.Store().GetDevice(ctx, old)
	if err != nil || d.CertFingerprint != pki.Fingerprint(renewed.Certificate[0]) {
		t.Errorf("stored fingerprint %q (%v), want the renewed certificate's", d.CertFingerprint, err)
	}
	if s.Cert(fresh) != freshCert {
		t.Error("a certificate with 11 months left was renewed")
	}
	if st.AckedByType[event.TypeHeartbeat] < 2 {
		t.Fatalf("heartbeats acknowledged %d, want both devices' over mutual TLS: %+v", st.AckedByType[event.TypeHeartbeat], st)
	}
}
