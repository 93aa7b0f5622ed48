package email_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	smtp "github.com/emersion/go-smtp"

	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/notify"
	"vigil/internal/notify/email"
)

const (
	testUser = "vigil-mailer"
	// testPass is a canary: it must never appear in an error or a log.
	testPass = "canary-pw-7f3a9c1e5b"
	rcptAddr = "ann.responder@example.org"
)

// sink is the far end: an in-process go-smtp server that records what it
// was told.
type sink struct {
	mu       sync.Mutex
	mails    []received
	authOK   int
	authTry  int
	mailCmds int
	tlsAuth  []bool // TLS state at each AUTH attempt

	// rcpt decides a RCPT TO; nil accepts.
	rcpt func(addr string) error
	// data, if set, runs when DATA begins (before the body is read).
	data func()
}

type received struct {
	from string
	to   []string
	raw  []byte
	tls  bool
}

func (s *sink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: s, c: c}, nil
}

type session struct {
	s      *sink
	c      *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		_, isTLS := ss.c.TLSConnectionState()
		ss.s.mu.Lock()
		defer ss.s.mu.Unlock()
		ss.s.authTry++
		ss.s.tlsAuth = append(ss.s.tlsAuth, isTLS)
		if user != testUser || pass != testPass {
			// A careless server echoes what it got: the client must
			// not pass this text on.
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials " + user + ":" + pass}
		}
		ss.s.authOK++
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.s.mu.Lock()
	ss.s.mailCmds++
	ss.s.mu.Unlock()
	if !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.rcpt != nil {
		if err := ss.s.rcpt(to); err != nil {
			return err
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if ss.s.data != nil {
		ss.s.data()
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := ss.c.TLSConnectionState()
	ss.s.mu.Lock()
	ss.s.mails = append(ss.s.mails, received{from: ss.from, to: ss.to, raw: b, tls: isTLS})
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

func (s *sink) snapshot() (mails []received, authTry, authOK, mailCmds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.mails...), s.authTry, s.authOK, s.mailCmds
}

// testCert makes a self-signed certificate for 127.0.0.1 and localhost
// and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vigil test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

type serverMode int

const (
	withSTARTTLS serverMode = iota
	implicitTLS
	plaintextOnly // no STARTTLS offered
)

// startServer runs s on 127.0.0.1:0 and returns its port and a pool
// trusting its certificate.
func startServer(t *testing.T, s *sink, mode serverMode) (int, *x509.CertPool) {
	t.Helper()
	cert, pool := testCert(t)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case withSTARTTLS:
		srv.TLSConfig = tlsCfg
	case implicitTLS:
		ln = tls.NewListener(ln, tlsCfg)
	case plaintextOnly:
		srv.AllowInsecureAuth = true // a server that would take a password in clear
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port, pool
}

var (
	raisedAt = time.Date(2026, 3, 14, 10, 2, 3, 0, time.UTC)
	sentAt   = raisedAt.Add(40 * time.Second)
)

func testMessage() notify.Message {
	return notify.Message{
		Event:      notify.EventRaised,
		AlertID:    "al_01HZX3K9",
		OrgID:      "org_1",
		Kind:       "sos",
		Severity:   "critical",
		State:      "open",
		RaisedAt:   raisedAt,
		PersonName: "Bea Worker",
		Note:       "Pressed the button twice",
		Position:   &notify.Position{Lat: 51.50735, Lon: -0.12776, AccuracyM: 12.4, At: raisedAt.Add(-25 * time.Second)},
		ConsoleURL: "https://vigil.example.org/console/alerts/al_01HZX3K9",
		MapURL:     "https://vigil.example.org/map?alert=al_01HZX3K9&z=17",
		AckURL:     "https://vigil.example.org/ack/al_01HZX3K9?t=eyJhbGciOi_J9-x&sig=AbC%2Fd",
	}
}

type fixture struct {
	sink *sink
	n    *email.Notifier
	logs *bytes.Buffer
}

func newFixture(t *testing.T, mode serverMode, mutate func(*email.Config)) *fixture {
	t.Helper()
	s := &sink{}
	port, pool := startServer(t, s, mode)
	cfg := email.Config{
		Host:     "127.0.0.1",
		Port:     port,
		TLS:      email.TLSStartTLS,
		Username: testUser,
		Password: config.Secret(testPass),
		From:     "Vigil Alerts <alerts@vigil.example.org>",
		HELO:     "vigil.test",
		Timeout:  10 * time.Second,
		RootCAs:  pool,
	}
	if mode == implicitTLS {
		cfg.TLS = email.TLSImplicit
	}
	if mutate != nil {
		mutate(&cfg)
	}
	var logs bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := email.New(cfg, clock.NewManual(sentAt), lg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &fixture{sink: s, n: n, logs: &logs}
}

// parsed is a received message, decoded.
type parsed struct {
	header    mail.Header
	subject   string
	text, htm string
}

func parse(t *testing.T, raw []byte) parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	var dec mime.WordDecoder
	subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decode subject: %v", err)
	}
	p := parsed{header: msg.Header, subject: subj}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		body, err := io.ReadAll(part) // quoted-printable is decoded by NextPart
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		pt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		body = bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
		switch pt {
		case "text/plain":
			p.text = string(body)
		case "text/html":
			p.htm = string(body)
		default:
			t.Errorf("unexpected part %q", pt)
		}
	}
	return p
}

func target() notify.Target {
	return notify.Target{Channel: "email", Address: rcptAddr, Name: "Ann Responder", UserID: "u_7"}
}

func TestSendOverSTARTTLS(t *testing.T) {
	f := newFixture(t, withSTARTTLS, nil)
	m := testMessage()
	rc, err := f.n.Notify(context.Background(), target(), m)
	if err != nil {
		t.Fatalf("Notify: %v", err)
	}
	mails, authTry, authOK, _ := f.sink.snapshot()
	if len(mails) != 1 {
		t.Fatalf("server got %d mails, want 1", len(mails))
	}
	got := mails[0]
	if authTry != 1 || authOK != 1 {
		t.Errorf("auth attempts %d, successes %d; want 1, 1", authTry, authOK)
	}
	if !got.tls || !f.sink.tlsAuth[0] {
		t.Errorf("mail over TLS = %v, auth over TLS = %v; want both true", got.tls, f.sink.tlsAuth[0])
	}
	if got.from != "alerts@vigil.example.org" || len(got.to) != 1 || got.to[0] != rcptAddr {
		t.Errorf("envelope from %q to %q", got.from, got.to)
	}
	p := parse(t, got.raw)

	if want := "[Vigil] SOS — Bea Worker — raised 10:02:03 UTC"; p.subject != want {
		t.Errorf("Subject = %q, want %q", p.subject, want)
	}
	if id := p.header.Get("Message-Id"); id == "" || id != rc.ProviderID {
		t.Errorf("Message-ID %q, receipt ProviderID %q: want equal and set", id, rc.ProviderID)
	}
	if !strings.HasPrefix(rc.ProviderID, "<vigil.al_01HZX3K9.raised.0.0.") || !strings.HasSuffix(rc.ProviderID, "@vigil.example.org>") {
		t.Errorf("ProviderID = %q", rc.ProviderID)
	}
	if strings.Contains(rc.ProviderID, "ann") || strings.Contains(rc.ProviderID, "responder") {
		t.Errorf("Message-ID %q reveals the recipient", rc.ProviderID)
	}
	if rc.Attempts != 1 {
		t.Errorf("Attempts = %d, want 1", rc.Attempts)
	}
	for h, want := range map[string]string{
		"In-Reply-To":              "<vigil.al_01HZX3K9@vigil.example.org>",
		"References":               "<vigil.al_01HZX3K9@vigil.example.org>",
		"X-Vigil-Alert-Id":         "al_01HZX3K9",
		"X-Vigil-Event":            "raised",
		"Auto-Submitted":           "auto-generated",
		"Importance":               "high",
		"X-Mailer":                 "Vigil",
		"From":                     `"Vigil Alerts" <alerts@vigil.example.org>`,
		"To":                       `"Ann Responder" <ann.responder@example.org>`,
		"Date":                     "Sat, 14 Mar 2026 10:02:43 +0000",
		"X-Auto-Response-Suppress": "All",
	} {
		if got := p.header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	for _, part := range []struct{ name, body string }{{"text", p.text}, {"html", p.htm}} {
		for _, want := range []string{
			"Bea Worker", "SOS", "critical", "Pressed the button twice",
			"Sat 14 Mar 2026 10:02:03 UTC", "51.507350, -0.127760", "±12 m", "10:01:38 UTC", "1m5s old",
		} {
			if !strings.Contains(part.body, want) {
				t.Errorf("%s part lacks %q:\n%s", part.name, want, part.body)
			}
		}
	}
	// Links exactly as given: verbatim in the text part, and as the
	// decoded href in the HTML part (where & is written &amp;).
	for _, link := range []string{m.ConsoleURL, m.MapURL, m.AckURL} {
		if !strings.Contains(p.text, "\n"+link+"\n") {
			t.Errorf("text part lacks the link %q on a line of its own", link)
		}
		if !containsHref(p.htm, link) {
			t.Errorf("html part lacks href %q", link)
		}
	}
	if strings.Contains(f.logs.String(), "Bea") || strings.Contains(f.logs.String(), rcptAddr) {
		t.Errorf("log carries personal data: %s", f.logs.String())
	}
}

// containsHref reports whether html has an href attribute whose decoded
// value is exactly link.
func containsHref(html, link string) bool {
	esc := strings.NewReplacer("&", "&amp;").Replace(link)
	return strings.Contains(html, `href="`+esc+`"`) || strings.Contains(html, `href="`+link+`"`)
}

func TestImplicitTLS(t *testing.T) {
	f := newFixture(t, implicitTLS, nil)
	if _, err := f.n.Notify(context.Background(), target(), testMessage()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	mails, _, _, _ := f.sink.snapshot()
	if len(mails) != 1 || !mails[0].tls {
		t.Fatalf("got %d mails (tls %v), want 1 over TLS", len(mails), len(mails) == 1 && mails[0].tls)
	}
}

func TestSTARTTLSIsRequired(t *testing.T) {
	f := newFixture(t, plaintextOnly, nil)
	_, err := f.n.Notify(context.Background(), target(), testMessage())
	if !errors.Is(err, email.ErrNoStartTLS) {
		t.Fatalf("Notify against a server without STARTTLS: err = %v, want ErrNoStartTLS", err)
	}
	if _, authTry, _, mailCmds := f.sink.snapshot(); authTry != 0 || mailCmds != 0 {
		t.Errorf("plaintext fallback: server saw %d AUTH and %d MAIL", authTry, mailCmds)
	}
	if strings.Contains(err.Error(), testPass) || strings.Contains(err.Error(), rcptAddr) {
		t.Errorf("error leaks: %v", err)
	}
}

func TestUntrustedCertificateIsRefused(t *testing.T) {
	for _, mode := range []serverMode{withSTARTTLS, implicitTLS} {
		f := newFixture(t, mode, func(c *email.Config) { c.RootCAs = x509.NewCertPool() })
		_, err := f.n.Notify(context.Background(), target(), testMessage())
		if err == nil || !strings.Contains(err.Error(), "tls") {
			t.Fatalf("mode %d: err = %v, want a TLS error", mode, err)
		}
		if notify.IsPermanent(err) {
			t.Errorf("mode %d: TLS failure marked permanent", mode)
		}
		if _, authTry, _, mailCmds := f.sink.snapshot(); authTry != 0 || mailCmds != 0 {
			t.Errorf("mode %d: server saw %d AUTH and %d MAIL over an unverified connection", mode, authTry, mailCmds)
		}
	}
}

func TestWrongPasswordLeaksNothing(t *testing.T) {
	const wrong = "canary-wrong-pw-0d1e2f"
	f := newFixture(t, withSTARTTLS, func(c *email.Config) { c.Password = config.Secret(wrong) })
	_, err := f.n.Notify(context.Background(), target(), testMessage())
	if err == nil {
		t.Fatal("Notify with a wrong password succeeded")
	}
	if !notify.IsPermanent(err) {
		t.Errorf("535 not permanent: %v", err)
	}
	var re *email.ReplyError
	if !errors.As(err, &re) || re.Op != "auth" || re.Code != 535 || re.Enhanced != "5.7.8" {
		t.Errorf("err = %v (%#v), want ReplyError auth 535 5.7.8", err, re)
	}
	// The server echoed the credentials: none of it may come through.
	for _, canary := range []string{wrong, testPass, rcptAddr, "bad credentials", "Bea Worker"} {
		if strings.Contains(err.Error(), canary) {
			t.Errorf("error %q contains %q", err, canary)
		}
		if strings.Contains(f.logs.String(), canary) {
			t.Errorf("log contains %q:\n%s", canary, f.logs.String())
		}
	}
	if _, _, _, mailCmds := f.sink.snapshot(); mailCmds != 0 {
		t.Errorf("MAIL sent after failed AUTH")
	}
}

func TestRecipientReplies(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reply     *smtp.SMTPError
		permanent bool
	}{
		{"550 no such user", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + rcptAddr + ">: no such user"}, true},
		{"451 try later", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "<" + rcptAddr + ">: greylisted"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, withSTARTTLS, nil)
			f.sink.rcpt = func(string) error { return tc.reply }
			_, err := f.n.Notify(context.Background(), target(), testMessage())
			if err == nil {
				t.Fatal("Notify succeeded")
			}
			if got := notify.IsPermanent(err); got != tc.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.permanent)
			}
			var re *email.ReplyError
			if !errors.As(err, &re) || re.Op != "rcpt to" || re.Code != tc.reply.Code {
				t.Errorf("err = %v, want ReplyError rcpt to %d", err, tc.reply.Code)
			}
			for _, leak := range []string{rcptAddr, "ann", "no such user", "greylisted", testPass} {
				if strings.Contains(strings.ToLower(err.Error()), leak) {
					t.Errorf("error %q contains %q", err, leak)
				}
			}
			if mails, _, _, _ := f.sink.snapshot(); len(mails) != 0 {
				t.Errorf("server stored %d mails", len(mails))
			}
		})
	}
}

func TestHTMLInjectionIsEscaped(t *testing.T) {
	f := newFixture(t, withSTARTTLS, nil)
	m := testMessage()
	m.PersonName = `Eve <script>alert("name")</script>`
	m.Note = `<img src=x onerror=alert(1)><a href="https://evil.example/">click</a>`
	m.MapURL = "javascript:alert(document.cookie)"
	if _, err := f.n.Notify(context.Background(), target(), m); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	mails, _, _, _ := f.sink.snapshot()
	p := parse(t, mails[0].raw)
	for _, bad := range []string{"<script", "<img", `<a href="https://evil.example/`, "javascript:"} {
		if strings.Contains(p.htm, bad) {
			t.Errorf("html part contains %q:\n%s", bad, p.htm)
		}
	}
	for _, want := range []string{"Eve &lt;script&gt;", "&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(p.htm, want) {
			t.Errorf("html part lacks escaped %q", want)
		}
	}
	if strings.Contains(p.text, "javascript:") {
		t.Errorf("text part carries a javascript: link")
	}
	// The note stays readable in the text part.
	if !strings.Contains(p.text, m.Note) {
		t.Errorf("text part lacks the note verbatim")
	}
}

func TestThreadingAcrossReminders(t *testing.T) {
	f := newFixture(t, withSTARTTLS, nil)
	ctx := context.Background()
	first := testMessage()
	rem := first
	rem.Event, rem.Attempt = notify.EventReminder, 2
	cancelled := first
	cancelled.Event = notify.EventCancelled
	var ids []string
	for _, m := range []notify.Message{first, rem, cancelled, rem} {
		rc, err := f.n.Notify(ctx, target(), m)
		if err != nil {
			t.Fatalf("Notify %s: %v", m.Event, err)
		}
		ids = append(ids, rc.ProviderID)
	}
	if ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Errorf("Message-IDs not distinct: %q", ids[:3])
	}
	if ids[1] != ids[3] {
		t.Errorf("a repeated notification got a new Message-ID: %q then %q", ids[1], ids[3])
	}
	other, err := f.n.Notify(ctx, notify.Target{Address: "someone.else@example.org"}, first)
	if err != nil {
		t.Fatal(err)
	}
	if other.ProviderID == ids[0] {
		t.Errorf("two recipients share Message-ID %q", other.ProviderID)
	}
	mails, _, _, _ := f.sink.snapshot()
	wantSubj := []string{
		"[Vigil] SOS — Bea Worker — raised 10:02:03 UTC",
		"[Vigil] REMINDER 2 — SOS — Bea Worker — raised 10:02:03 UTC",
		"[Vigil] CANCELLED — SOS — Bea Worker — raised 10:02:03 UTC",
	}
	for i, want := range wantSubj {
		p := parse(t, mails[i].raw)
		if p.subject != want {
			t.Errorf("mail %d Subject = %q, want %q", i, p.subject, want)
		}
		if got := p.header.Get("References"); got != "<vigil.al_01HZX3K9@vigil.example.org>" {
			t.Errorf("mail %d References = %q", i, got)
		}
	}
}

func TestContextEndsTheConnection(t *testing.T) {
	f := newFixture(t, withSTARTTLS, nil)
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	f.sink.data = func() {
		close(entered)
		<-release // the server hangs in DATA
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := f.n.Notify(ctx, target(), testMessage())
		errc <- err
	}()
	<-entered
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if notify.IsPermanent(err) {
		t.Errorf("cancellation marked permanent")
	}
}

func TestConnectionRefusedIsTemporary(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n, err := email.New(email.Config{Host: "127.0.0.1", Port: port, From: "alerts@example.org", Timeout: 5 * time.Second}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Notify(context.Background(), target(), testMessage())
	if err == nil || notify.IsPermanent(err) {
		t.Fatalf("err = %v, want a temporary error", err)
	}
	if strings.Contains(err.Error(), rcptAddr) {
		t.Errorf("error leaks the address: %v", err)
	}
}

func TestBadTargetIsPermanent(t *testing.T) {
	n, err := email.New(email.Config{Host: "smtp.example.org", From: "alerts@example.org"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []notify.Target{
		{Address: ""},
		{Address: "not an address <<"},
		{Address: "a@example.org\r\nBcc: x@evil.example"},
		{Channel: "sms", Address: "+441234567890"},
	} {
		_, err := n.Notify(context.Background(), to, testMessage())
		if !notify.IsPermanent(err) {
			t.Errorf("target %q: err = %v, want permanent", to.Address, err)
		}
		if to.Address != "" && strings.Contains(err.Error(), to.Address) {
			t.Errorf("error %q contains the address", err)
		}
	}
}

func TestConfig(t *testing.T) {
	ok := email.Config{Host: "smtp.example.org", From: "alerts@example.org"}
	for _, tc := range []struct {
		name   string
		mutate func(*email.Config)
		valid  bool
	}{
		{"defaults", func(*email.Config) {}, true},
		{"implicit", func(c *email.Config) { c.TLS = email.TLSImplicit }, true},
		{"none without insecure", func(c *email.Config) { c.TLS = email.TLSNone }, false},
		{"none with insecure", func(c *email.Config) { c.TLS, c.Insecure = email.TLSNone, true }, true},
		{"opportunistic is not a mode", func(c *email.Config) { c.TLS = "opportunistic" }, false},
		{"no host", func(c *email.Config) { c.Host = "" }, false},
		{"host with port", func(c *email.Config) { c.Host = "smtp.example.org:25" }, false},
		{"unix socket", func(c *email.Config) { c.Host = "unix:///run/smtp.sock" }, false},
		{"no from", func(c *email.Config) { c.From = "" }, false},
		{"bad from", func(c *email.Config) { c.From = "alerts" }, false},
		{"bad port", func(c *email.Config) { c.Port = 70000 }, false},
		{"password without user", func(c *email.Config) { c.Username = "" }, false},
		{"bad auth", func(c *email.Config) { c.Username, c.Auth = "u", "cram-md5" }, false},
		{"negative timeout", func(c *email.Config) { c.Timeout = -time.Second }, false},
	} {
		cfg := ok
		cfg.Password = config.Secret(testPass)
		cfg.Username = "u"
		tc.mutate(&cfg)
		_, err := email.New(cfg, nil, nil)
		if (err == nil) != tc.valid {
			t.Errorf("%s: err = %v, valid %v", tc.name, err, tc.valid)
		}
		if err != nil {
			if !errors.Is(err, email.ErrConfig) {
				t.Errorf("%s: %v does not wrap ErrConfig", tc.name, err)
			}
			if strings.Contains(err.Error(), testPass) {
				t.Errorf("%s: error leaks the password", tc.name)
			}
		}
	}
}
