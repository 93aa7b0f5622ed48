package app_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/vigiltest"
)

// mailSink is an SMTP server (implicit TLS) that keeps what it receives:
// the mail provider at the network edge.
type mailSink struct {
	mu    sync.Mutex
	mails []sunkMail
}

type sunkMail struct {
	to  []string
	raw string
}

func (s *mailSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }

type sinkSession struct {
	s  *mailSink
	to []string
}

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.mails = append(ss.s.mails, sunkMail{to: ss.to, raw: string(b)})
	ss.s.mu.Unlock()
	return nil
}
func (ss *sinkSession) Reset()        { ss.to = nil }
func (ss *sinkSession) Logout() error { return nil }

func (s *mailSink) all() []sunkMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunkMail(nil), s.mails...)
}

// startMailSink serves the sink on 127.0.0.1 and returns its port and the
// PEM of its certificate.
func startMailSink(t *testing.T) (*mailSink, int, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mail sink"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	s := &mailSink{}
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s, ln.Addr().(*net.TCPAddr).Port, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestAccountMailLinks is security requirements 29 and 21 for mail: the
// links in invitations and resets come from notify.base_url only, never
// from the request's Host or X-Forwarded-Host, and a reset mail goes only
// to a real account.
func TestAccountMailLinks(t *testing.T) {
	sink, port, certPEM := startMailSink(t)
	cfg := vigiltest.Config(t)
	caFile := filepath.Join(t.TempDir(), "sink-ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Notify.BaseURL = "https://vigil.example.org"
	cfg.Notify.SMTPHost, cfg.Notify.SMTPPort, cfg.Notify.SMTPTLS = "127.0.0.1", port, "implicit"
	cfg.Notify.SMTPFrom = "Vigil <vigil@example.org>"
	cfg.Notify.OutboundCAFile = caFile
	clk := clock.NewManual(time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC))
	var out bytes.Buffer
	a, _ := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk, Out: &out})
	w := &accessWorld{a: a, clk: clk, token: bootstrapRe.FindString(out.String())}
	admin, _, _ := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}
	admin.header.Set("Host", "evil.example")
	admin.header.Set("X-Forwarded-Host", "evil.example")
	if r := admin.do("POST", "/api/v1/orgs/acme/users", `{"email":"nina@example.org","name":"Nina","role":"supervisor"}`); r.status != 201 {
		t.Fatalf("invite: %d %s", r.status, r.body)
	}
	waitMails(t, sink, 1)

	anon := newBrowser(t, a)
	anon.header.Set("Host", "evil.example")
	anon.header.Set("X-Forwarded-Host", "evil.example")
	if r := anon.do("POST", "/api/v1/auth/reset", `{"email":"nobody@example.org"}`); r.status != 202 {
		t.Fatalf("reset unknown: %d %s", r.status, r.body)
	}
	if r := anon.do("POST", "/api/v1/auth/reset", `{"email":"nina@example.org"}`); r.status != 202 {
		t.Fatalf("reset real: %d %s", r.status, r.body)
	}
	mails := waitMails(t, sink, 2) // the queue is first in, first out
	for i, m := range mails {
		if len(m.to) != 1 || m.to[0] != "nina@example.org" {
			t.Errorf("mail %d went to %v, want only nina@example.org", i, m.to)
		}
		if strings.Contains(m.raw, "evil.example") {
			t.Errorf("mail %d carries the request's host:\n%s", i, m.raw)
		}
	}
	// Someone guesses Nina's password: she hears of it once.
	for i := 0; i < 12; i++ {
		anon.do("POST", "/api/v1/auth/login", `{"email":"nina@example.org","password":"`+strongPassword+`"}`)
	}
	if m := waitMails(t, sink, 3)[2]; len(m.to) != 1 || m.to[0] != "nina@example.org" || !strings.Contains(m.raw, "failed sign-ins") {
		t.Errorf("throttle notice: to %v:\n%s", m.to, m.raw)
	}
	if !strings.Contains(mails[0].raw, "https://vigil.example.org/set-password#token=") ||
		!strings.Contains(mails[1].raw, "https://vigil.example.org/reset-password#token=") {
		t.Errorf("mails lack the links built from the base URL:\n%s\n---\n%s", mails[0].raw, mails[1].raw)
	}
}

func waitMails(t *testing.T, s *mailSink, n int) []sunkMail {
	t.Helper()
	eventually(t, "mails in the sink", func() bool { return len(s.all()) >= n })
	m := s.all()
	if len(m) != n {
		t.Fatalf("%d mails in the sink, want %d", len(m), n)
	}
	return m
}
