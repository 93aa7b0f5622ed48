package app_test

import (
	"context"
	"crypto/x509"
	"testing"

	"vigil/internal/sim"
	"vigil/internal/vigiltest"
)

// TestEnrolTokenThroughTheAPI: an admin issues a device's enrolment token
// through the JSON API; the device exchanges it for a client certificate
// naming it, once.
func TestEnrolTokenThroughTheAPI(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	dev := register(t, a)
	api := newAPIClient(t, a)
	var tok struct {
		Token    string `json:"token"`
		DeviceID string `json:"device_id"`
	}
	if code := api.do("POST", "/api/v1/devices/"+dev.DeviceID+"/enrol-token", `{"ttl":"10m"}`, &tok); code != 201 || tok.Token == "" {
		t.Fatalf("enrol token: %d %+v", code, tok)
	}
	if code := api.do("POST", "/api/v1/devices/"+dev.DeviceID+"/enrol-token", `{"ttl":"30d"}`, nil); code != 400 {
		t.Fatalf("enrol token with a month's ttl: %d, want 400", code)
	}
	ctx := context.Background()
	cert, err := sim.Enrol(ctx, a.Addr("https"), vigiltest.ClientTLS(t, a), dev.DeviceID, tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || leaf.Subject.CommonName != dev.DeviceID {
		t.Fatalf("certificate: %v %v", err, leaf.Subject)
	}
	if _, err := sim.Enrol(ctx, a.Addr("https"), vigiltest.ClientTLS(t, a), dev.DeviceID, tok.Token); err == nil {
		t.Fatal("the token enrolled twice")
	}
}
