package mqttgw_test

import (
	"crypto/x509"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/gateway/mqttgw"
	"vigil/internal/vigiltest"
)

// TestClientCertConfig: mutual TLS cannot be half configured.
func TestClientCertConfig(t *testing.T) {
	srvTLS, _ := vigiltest.TestTLS(t)
	for _, tc := range []struct {
		name string
		cfg  mqttgw.Config
		want string
	}{
		{"required without a CA", mqttgw.Config{ClientCerts: mqttgw.ClientCertsRequired}, "no client CA"},
		{"unknown mode", mqttgw.Config{ClientCerts: "sometimes"}, "want optional or required"},
		{"CA without a certificate authenticator", mqttgw.Config{ClientCAs: x509.NewCertPool()}, "checks device certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mqttgw.New(tc.cfg, srvTLS, devices{}, &sink{}, event.NewDecoder(event.Limits{}),
				clock.Func(func() time.Time { return now }), slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
