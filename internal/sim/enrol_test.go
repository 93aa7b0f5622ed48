package sim_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"vigil/internal/enrol"
	"vigil/internal/event"
	"vigil/internal/sim"
	"vigil/internal/vigiltest"
)

// TestEnrolAndConnect: the simulator enrols with a token (its key stays
// with it) and then sends over MQTT with mutual TLS required.
func TestEnrolAndConnect(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.MQTT.ClientCerts = "required"
	a := vigiltest.StartApp(t, cfg)
	ctx := context.Background()
	if err := a.Devices().EnsureOrg(ctx, "acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	c, err := a.Devices().Register(ctx, "acme", "pendant")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := enrol.NewToken(ctx, a.Store(), time.Now(), c.DeviceID, 0)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := vigiltest.ClientTLS(t, a)
	cert, err := sim.Enrol(ctx, a.Addr("https"), tlsCfg, c.DeviceID, tok.Value)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Enrol(ctx, a.Addr("https"), tlsCfg, c.DeviceID, tok.Value); err == nil {
		t.Error("the same token enrolled twice")
	}

	s, err := sim.New(sim.Config{
		MQTTAddr: a.Addr("mqtt"), TLS: tlsCfg,
		Devices:        []sim.Credential{{DeviceID: c.DeviceID}}, // no secret: the certificate is the credential
		Certs:          map[string]*tls.Certificate{c.DeviceID: cert},
		HeartbeatEvery: 50 * time.Millisecond, RetryMin: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	deadline := time.Now().Add(15 * time.Second)
	for s.Stats().AckedByType[event.TypeHeartbeat] == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if st := s.Stats(); st.AckedByType[event.TypeHeartbeat] == 0 {
		t.Fatalf("no heartbeat acknowledged over mutual TLS: %+v", st)
	}
}
