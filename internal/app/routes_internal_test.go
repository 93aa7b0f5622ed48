package app

import (
	"bytes"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"vigil/internal/clock"
	"vigil/internal/config"
)

// Security row 17: a handler panic gives the client a generic 500; the
// detail reaches only the server log.
func TestPanicIsGeneric500(t *testing.T) {
	var logBuf bytes.Buffer
	a := &App{log: slog.New(slog.NewTextHandler(&logBuf, nil))}
	h := a.harden(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("secret detail: db password hunter2 at store.go:42")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	body := rec.Body.String()
	for _, leak := range []string{"hunter2", "store.go", "goroutine", "panic"} {
		if strings.Contains(body, leak) {
			t.Errorf("500 body reveals %q: %s", leak, body)
		}
	}
	if !strings.Contains(logBuf.String(), "store.go:42") {
		t.Errorf("panic detail missing from the server log: %s", logBuf.String())
	}
}

// The generated server certificate is renewed while the server runs once it
// nears expiry, and the listeners serve the new one.
func TestServerCertRenewedWhileRunning(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	clk := clock.Func(func() time.Time { return now })
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	a := &App{cfg: cfg, deps: Deps{Clock: clk}, log: slog.New(slog.DiscardHandler)}
	if err := a.setupTLS(); err != nil {
		t.Fatal(err)
	}
	first, _ := a.tlsCfg.GetCertificate(nil)
	a.renewServerCert() // not due: same certificate
	if same, _ := a.tlsCfg.GetCertificate(nil); !bytes.Equal(same.Certificate[0], first.Certificate[0]) {
		t.Fatal("certificate replaced although far from expiry")
	}
	now = now.Add(350 * 24 * time.Hour) // within 30 days of a 1-year certificate
	a.renewServerCert()
	renewed, _ := a.tlsCfg.GetCertificate(nil)
	if bytes.Equal(renewed.Certificate[0], first.Certificate[0]) {
		t.Fatal("certificate not renewed near expiry")
	}
	leaf, err := x509.ParseCertificate(renewed.Certificate[0])
	if err != nil || !leaf.NotAfter.After(now.Add(300*24*time.Hour)) {
		t.Fatalf("renewed certificate expires %v", leaf.NotAfter)
	}
}
