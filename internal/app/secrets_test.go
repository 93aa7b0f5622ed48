package app_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/internal/app"
	"vigil/internal/auth/mfa"
	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
	"vigil/internal/web"
)

// startWorld is newAccessWorld with a configuration and a logger of the
// test's choosing (nil: the test log); stop stops the server early.
func startWorld(t *testing.T, cfg config.Config, log *slog.Logger) (w *accessWorld, out *bytes.Buffer, stop func()) {
	t.Helper()
	clk := clock.NewManual(time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC))
	out = &bytes.Buffer{}
	a, stop := vigiltest.StartAppWith(t, cfg, app.Deps{Clock: clk, Out: out, Logger: log})
	tok := bootstrapRe.FindString(out.String())
	if tok == "" {
		t.Fatalf("no bootstrap token printed: %q", out.String())
	}
	return &accessWorld{a: a, clk: clk, token: tok}, out, stop
}

// --- security requirement 2: per-install secrets, none in the binary ---

// secretFile reports whether a file of the data directory holds a secret:
// a key file by its name, the SQLite database (it keeps the escalation
// link key, ack_link_key, in clear, and the sealed TOTP seeds), or any
// file with a PEM private key in it.
func secretFile(rel string, content []byte) bool {
	base := filepath.Base(rel)
	switch {
	case strings.HasSuffix(base, ".key"), strings.Contains(strings.ToLower(base), "secret"),
		base == "vigil.db", strings.HasPrefix(base, "vigil.db-"):
		return true
	}
	return privateKeyPEM.Match(content)
}

// The secret files every install must have, relative to its data dir.
var wantSecretFiles = []string{"seal.key", "session.key", "audit-signing.key", "tls/ca.key", "tls/server.key", "vigil.db"}

// privateKeyPEM matches the first line of a PEM private key of any kind
// (PKCS#8, SEC 1 "EC", PKCS#1 "RSA", "OPENSSH", "ENCRYPTED"). Built so
// that this file does not contain the string it looks for.
var privateKeyPEM = regexp.MustCompile("-----" + "BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY" + "-----")

// fingerprint is a short SHA-256 of b in hex.
func fingerprint(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:12])
}

// publicKeyFingerprint parses a PEM PKCS#8 private key file and
// fingerprints its public key.
func publicKeyFingerprint(t *testing.T, path string) (string, crypto.PublicKey) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	pub := k.(crypto.Signer).Public()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return fingerprint(der), pub
}

// installSecrets fingerprints every per-install secret of a.
func installSecrets(t *testing.T, a *app.App, dir string) map[string]string {
	t.Helper()
	fp := map[string]string{}
	b, err := os.ReadFile(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, l)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("seal.key holds %d keys, want 1", len(keys))
	}
	fp["seal.key"] = fingerprint([]byte(keys[0]))

	b, err = os.ReadFile(filepath.Join(dir, "session.key"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 32 {
		t.Fatalf("session.key: %d bytes, want 32", len(b))
	}
	fp["session.key"] = fingerprint(b)

	var auditPub crypto.PublicKey
	fp["audit-signing.key"], auditPub = publicKeyFingerprint(t, filepath.Join(dir, "audit-signing.key"))
	if _, ok := auditPub.(ed25519.PublicKey); !ok {
		t.Errorf("audit-signing.key is a %T, want Ed25519", auditPub)
	}
	var caPub crypto.PublicKey
	fp["tls/ca.key"], caPub = publicKeyFingerprint(t, filepath.Join(dir, "tls", "ca.key"))
	fp["tls/server.key"], _ = publicKeyFingerprint(t, filepath.Join(dir, "tls", "server.key"))
	// tls/ca.key is the key of the CA the server presents.
	blk, _ := pem.Decode(a.CACertPEM())
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(caPub) {
		t.Errorf("tls/ca.key is not the key of the CA certificate the server uses")
	}

	link, err := a.Store().GetMeta(context.Background(), "ack_link_key")
	if err != nil {
		t.Fatalf("escalation link key: %v", err)
	}
	if raw, err := hex.DecodeString(link); err != nil || len(raw) < 32 {
		t.Errorf("ack_link_key: %d hex bytes (%v), want 32 random bytes", len(link)/2, err)
	}
	fp["ack_link_key"] = fingerprint([]byte(link))
	return fp
}

// checkSecretModes walks dir: every secret file is 0600 (no group or
// other bits), every directory 0700, and the expected secrets exist.
func checkSecretModes(t *testing.T, dir string) {
	t.Helper()
	found := map[string]bool{}
	var listing []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm()
		if d.IsDir() {
			if mode&0o077 != 0 {
				t.Errorf("directory %s has mode %04o, want no group or other access", rel, mode)
			}
			return nil
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		var head []byte
		if fi.Size() < 1<<20 { // key files are small; the scan of content is for stray PEM keys
			if head, err = os.ReadFile(path); err != nil {
				return err
			}
		}
		secret := secretFile(rel, head)
		kind := ""
		if secret {
			kind = " (secret)"
			found[rel] = true
			if mode != 0o600 {
				t.Errorf("secret file %s has mode %04o, want 0600", rel, mode)
			}
		}
		listing = append(listing, fmt.Sprintf("%04o %s%s", mode, rel, kind))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("data directory %s:\n  %s", dir, strings.Join(listing, "\n  "))
	for _, f := range wantSecretFiles {
		if !found[f] {
			t.Errorf("secret file %s missing from the data directory", f)
		}
	}
}

// TestInstallSecretsArePerInstall is security requirement 2 (first half):
// two installs generate their own secrets (every fingerprint differs,
// across installs and across purposes), keep them 0600 in a 0700
// directory, and neither accepts the other's session cookie or API token.
func TestInstallSecretsArePerInstall(t *testing.T) {
	type install struct {
		w     *accessWorld
		dir   string
		admin *browser
		token string
	}
	var in [2]install
	fps := map[string]string{} // fingerprint → which secret of which install
	for i := range in {
		cfg := vigiltest.Config(t)
		cfg.DataDir = filepath.Join(cfg.DataDir, "data") // made by the app, with its own mode
		w, _, _ := startWorld(t, cfg, nil)
		// The same admin, e-mail, password and organisation on both.
		admin, _, _ := w.enrolledAdmin(t)
		if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
			t.Fatalf("install %c: create org: %d %s", 'A'+i, r.status, r.body)
		}
		r := admin.do("POST", "/api/v1/orgs/acme/tokens", `{"name":"ci","permissions":["tokens.read"],"expires_in":"720h"}`)
		if r.status != 201 {
			t.Fatalf("install %c: create token: %d %s", 'A'+i, r.status, r.body)
		}
		tok, _ := r.json(t)["token"].(string)
		in[i] = install{w: w, dir: cfg.DataDir, admin: admin, token: tok}

		for name, f := range installSecrets(t, w.a, cfg.DataDir) {
			who := fmt.Sprintf("%s of install %c", name, 'A'+i)
			if prev, dup := fps[f]; dup {
				t.Errorf("%s has the fingerprint of %s (%s)", who, prev, f)
			}
			fps[f] = who
		}
		checkSecretModes(t, cfg.DataDir)
	}
	if len(fps) != 2*6 {
		t.Errorf("%d distinct secret fingerprints, want 12: %v", len(fps), fps)
	}

	a, b := in[0], in[1]
	// A's credentials work on A…
	if r := a.admin.do("GET", "/api/v1/auth/me", ""); r.status != 200 {
		t.Fatalf("A's session on A: %d %s", r.status, r.body)
	}
	onA := newBrowser(t, a.w.a)
	onA.header.Set("Authorization", "Bearer "+a.token)
	if r := onA.do("GET", "/api/v1/orgs/acme/tokens", ""); r.status != 200 {
		t.Fatalf("A's API token on A: %d %s", r.status, r.body)
	}
	// …and are refused by B, which has the same user, organisation and a
	// token of its own.
	onB := newBrowser(t, b.w.a)
	for name, c := range a.admin.cookies {
		onB.cookies[name] = &http.Cookie{Name: c.Name, Value: c.Value}
	}
	for _, p := range []string{"/api/v1/auth/me", "/api/v1/orgs", "/api/v1/orgs/acme/tokens"} {
		if r := onB.do("GET", p, ""); r.status != 401 {
			t.Errorf("A's session cookie on B, GET %s: %d %s, want 401", p, r.status, r.body)
		}
	}
	onB = newBrowser(t, b.w.a)
	onB.header.Set("Authorization", "Bearer "+a.token)
	if r := onB.do("GET", "/api/v1/orgs/acme/tokens", ""); r.status != 401 {
		t.Errorf("A's API token on B: %d %s, want 401", r.status, r.body)
	}
	// A's token id with B's secret, and B's id with A's secret: refused.
	idA, secA := splitToken(t, a.token)
	idB, secB := splitToken(t, b.token)
	for _, forged := range []string{"vgt_" + idA + "_" + secB, "vgt_" + idB + "_" + secA} {
		for _, x := range []install{a, b} {
			c := newBrowser(t, x.w.a)
			c.header.Set("Authorization", "Bearer "+forged)
			if r := c.do("GET", "/api/v1/orgs/acme/tokens", ""); r.status != 401 {
				t.Errorf("mixed token %s…: %d, want 401", forged[:12], r.status)
			}
		}
	}
	// The device cookie (an HMAC under session.key) differs for the same
	// account on A and B, so A's does not exempt a browser from B's
	// account-wide throttle.
	if a.admin.cookies[web.DeviceCookie] == nil || b.admin.cookies[web.DeviceCookie] == nil {
		t.Fatal("no device cookie after sign-in")
	}
	if a.admin.cookies[web.DeviceCookie].Value == b.admin.cookies[web.DeviceCookie].Value {
		t.Error("A and B give the same account the same device cookie: session.key is not per install")
	}
}

func splitToken(t *testing.T, tok string) (id, secret string) {
	t.Helper()
	rest, ok := strings.CutPrefix(tok, "vgt_")
	id, secret, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 {
		t.Fatalf("token %.8s…: want vgt_<id>_<secret>", tok)
	}
	return id, secret
}

// repoRoot is the directory of go.mod above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// ignored reads the root .gitignore's simple patterns: "/name" (anchored
// at the root) and "*.ext" (any file name).
func ignored(t *testing.T, root string) func(rel string, dir bool) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var anchored, globs []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "!"):
		case strings.HasPrefix(l, "/"):
			anchored = append(anchored, strings.TrimSuffix(l[1:], "/"))
		default:
			globs = append(globs, strings.TrimSuffix(l, "/"))
		}
	}
	return func(rel string, _ bool) bool {
		if slices.Contains(anchored, rel) {
			return true
		}
		for _, g := range globs {
			if ok, _ := filepath.Match(g, filepath.Base(rel)); ok {
				return true
			}
		}
		return false
	}
}

// TestSecretScanSourceAndBinary is security requirement 2 (second half):
// no PEM private key in the repository's non-test, non-testdata files nor
// in the built binary, so every install's keys are its own.
func TestSecretScanSourceAndBinary(t *testing.T) {
	// The scanner finds what it must find.
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	for _, typ := range []string{"PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"} {
		if !privateKeyPEM.Match(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})) {
			t.Fatalf("the scanner misses a %s block", typ)
		}
	}
	if privateKeyPEM.MatchString(`pemTypePKCS8 = "PRIVATE KEY"`) || privateKeyPEM.MatchString("-----BEGIN CERTIFICATE-----") {
		t.Fatal("the scanner flags a key type name or a certificate")
	}

	root := repoRoot(t)
	skip := ignored(t, root)
	scanned := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || skip(rel, true) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasSuffix(d.Name(), "_test.go") || skip(rel, false) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		if m := privateKeyPEM.Find(b); m != nil {
			t.Errorf("%s holds a PEM private key (%s)", rel, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 50 {
		t.Fatalf("scanned only %d files under %s", scanned, root)
	}
	t.Logf("scanned %d repository files", scanned)

	if testing.Short() {
		t.Skip("-short: binary not built")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build the binary, so it cannot be scanned: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "vigil")
	cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/vigil")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/vigil: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if ms := privateKeyPEM.FindAll(b, 5); len(ms) > 0 {
		for _, m := range ms {
			t.Errorf("the vigil binary holds a PEM private key header %q", m)
		}
	}
	// Nor a DER PKCS#8 Ed25519 key (the audit key's form) or an SSH key.
	if bytes.Contains(b, []byte("openssh-key-v1\x00")) {
		t.Error("the vigil binary holds an OpenSSH private key")
	}
	t.Logf("scanned the %d MB binary", len(b)>>20)
}

// --- security requirement 39: no secret in logs, errors or bodies ---

// lockedBuffer is a log sink the server's goroutines write concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// smtpSink is an SMTP server over implicit TLS on loopback that takes
// every message and AUTH, and keeps the messages.
type smtpSink struct {
	port   int
	caFile string
	mu     sync.Mutex
	mails  []string
	auths  int
	// refuse makes AUTH fail with a reply that echoes the credentials,
	// as some servers do.
	refuse bool
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	cert := selfSigned(t, net.ParseIP("127.0.0.1"))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{port: ln.Addr().(*net.TCPAddr).Port, caFile: filepath.Join(t.TempDir(), "smtp-ca.pem")}
	if err := os.WriteFile(s.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(c) })
		}
	})
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	say := func(l string) { _, _ = c.Write([]byte(l + "\r\n")) }
	say("220 sink ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-sink\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SMTPUTF8")
		case strings.HasPrefix(cmd, "AUTH"):
			s.mu.Lock()
			s.auths++
			refuse := s.refuse
			s.mu.Unlock()
			if refuse {
				f := strings.Fields(strings.TrimSpace(line))
				cred, _ := base64.StdEncoding.DecodeString(f[len(f)-1])
				say("535 5.7.8 authentication failed for " + strings.ReplaceAll(string(cred), "\x00", " "))
				continue
			}
			say("235 2.7.0 accepted")
		case cmd == "DATA":
			say("354 go on")
			var msg strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				msg.WriteString(l)
			}
			s.mu.Lock()
			s.mails = append(s.mails, msg.String())
			s.mu.Unlock()
			say("250 2.0.0 queued")
		case cmd == "QUIT":
			say("221 2.0.0 bye")
			return
		default:
			say("250 2.0.0 ok")
		}
	}
}

func (s *smtpSink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails)
}

// exchange is one request's answer as the client saw it.
type exchange struct {
	label  string
	status int
	body   string
}

// recorder keeps every answer of a flow and every cookie value the
// server set.
type recorder struct {
	t       *testing.T
	got     []exchange
	cookies map[string]string // value → cookie name
}

func (r *recorder) do(b *browser, want int, label, method, path, body string) reply {
	r.t.Helper()
	rep := b.do(method, path, body)
	r.got = append(r.got, exchange{label, rep.status, string(rep.body)})
	for _, c := range rep.set {
		if c.Value != "" {
			r.cookies[c.Value] = c.Name
		}
	}
	if rep.status != want {
		r.t.Fatalf("%s: %d %s, want %d", label, rep.status, rep.body, want)
	}
	return rep
}

// canary is a secret value and how to find it.
type canary struct {
	name  string
	value string
	code  bool     // a one-time code: matched only as a whole number
	in    []string // the labels of the answers expected to carry it
}

func (c canary) foundIn(s string) bool {
	if !c.code {
		return strings.Contains(s, c.value)
	}
	return regexp.MustCompile(`(^|[^0-9])` + regexp.QuoteMeta(c.value) + `([^0-9]|$)`).MatchString(s)
}

func jsonBody(t *testing.T, v map[string]string) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSecretsStayOutOfLogs is security requirement 39: a full sign-in
// life (bootstrap, TOTP enrolment, TOTP sign-in, an API token and its use,
// a recovery code, a wrong password, a password typed into the e-mail
// field, a wrong TOTP code, a password reset through real SMTP, sign-out)
// with the server logging JSON at Debug level, and with secret settings
// (SMTP password, webhook key) configured. No canary — passwords, TOTP
// codes and seed, cookie values, the API token, the bootstrap and reset
// tokens, recovery codes, configured secrets — reaches the log, the
// terminal output (but the bootstrap token), the audit log, or any HTTP
// body but the one that hands it out.
func TestSecretsStayOutOfLogs(t *testing.T) {
	const (
		email      = "ada@example.org"
		password   = "canary-pass-3f9a71c2e6d4b805"
		wrongPass  = "canary-wrongpass-0d8c5e2a9b17f463"
		newPass    = "canary-newpass-b7e29d04a1f6c358"
		smtpPass   = "canary-smtp-5c1d8e7f9a2b4036"
		webhookKey = "canary-webhook-9e4a2f71c0d3b865"
	)
	sink := startSMTPSink(t)
	cfg := vigiltest.Config(t)
	cfg.Notify.BaseURL = "https://vigil.example.org"
	cfg.Notify.SMTPHost = "127.0.0.1"
	cfg.Notify.SMTPPort = sink.port
	cfg.Notify.SMTPTLS = "implicit"
	cfg.Notify.SMTPFrom = "vigil@example.org"
	cfg.Notify.SMTPUsername = "vigil"
	cfg.Notify.SMTPPassword = config.Secret(smtpPass)
	cfg.Notify.OutboundCAFile = sink.caFile
	cfg.Notify.WebhookKey = config.Secret(webhookKey)
	logs := &lockedBuffer{}
	w, out, stop := startWorld(t, cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	rec := &recorder{t: t, cookies: map[string]string{}}
	login := jsonBody(t, map[string]string{"email": email, "password": password})

	// Bootstrap, then the token once more.
	b := newBrowser(t, w.a)
	rec.do(b, 201, "bootstrap", "POST", "/api/v1/auth/bootstrap",
		jsonBody(t, map[string]string{"token": w.token, "email": email, "name": "Ada Admin", "password": password}))
	rec.do(newBrowser(t, w.a), 410, "bootstrap reused", "POST", "/api/v1/auth/bootstrap",
		jsonBody(t, map[string]string{"token": w.token, "email": "eve@example.org", "name": "Eve", "password": password}))

	// Sign in and enrol TOTP.
	rec.do(b, 200, "login", "POST", "/api/v1/auth/login", login)
	r := rec.do(b, 200, "totp enrol", "POST", "/api/v1/auth/totp/enrol", `{}`)
	u, err := url.Parse(r.json(t)["otpauth_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	seedB32 := u.Query().Get("secret")
	seed := decodeBase32(t, seedB32)
	code0 := mfa.TOTPCode(seed, w.clk.Now())
	r = rec.do(b, 200, "totp confirm", "POST", "/api/v1/auth/totp/confirm", `{"code":"`+code0+`"}`)
	var recovery []string
	for _, c := range r.json(t)["recovery_codes"].([]any) {
		recovery = append(recovery, c.(string))
	}

	// An organisation and an API token, used once.
	rec.do(b, 201, "create org", "POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`)
	r = rec.do(b, 201, "create token", "POST", "/api/v1/orgs/acme/tokens", `{"name":"ci","permissions":["tokens.read"],"expires_in":"720h"}`)
	apiToken, _ := r.json(t)["token"].(string)
	_, apiSecret := splitToken(t, apiToken)
	bearer := newBrowser(t, w.a)
	bearer.header.Set("Authorization", "Bearer "+apiToken)
	rec.do(bearer, 200, "use token", "GET", "/api/v1/orgs/acme/tokens", "")

	// Sign in with password and TOTP.
	w.clk.Advance(30 * time.Second)
	c := newBrowser(t, w.a)
	rec.do(c, 200, "login 2", "POST", "/api/v1/auth/login", login)
	code1 := mfa.TOTPCode(seed, w.clk.Now())
	rec.do(c, 200, "totp", "POST", "/api/v1/auth/totp", `{"code":"`+code1+`"}`)
	rec.do(c, 200, "me", "GET", "/api/v1/auth/me", "")

	// A wrong TOTP code, then a recovery code.
	d := newBrowser(t, w.a)
	rec.do(d, 200, "login 3", "POST", "/api/v1/auth/login", login)
	wrongCode := mfa.TOTPCode(seed, w.clk.Now().Add(10*time.Minute))
	rec.do(d, 401, "wrong totp", "POST", "/api/v1/auth/totp", `{"code":"`+wrongCode+`"}`)
	rec.do(d, 200, "recovery", "POST", "/api/v1/auth/recovery", `{"code":"`+recovery[0]+`"}`)

	// A wrong password, and the password typed into the e-mail field
	// (where a careless log would write it).
	e := newBrowser(t, w.a)
	rec.do(e, 401, "wrong password", "POST", "/api/v1/auth/login", jsonBody(t, map[string]string{"email": email, "password": wrongPass}))
	rec.do(e, 401, "password as e-mail", "POST", "/api/v1/auth/login", jsonBody(t, map[string]string{"email": password, "password": wrongPass}))
	rec.do(e, 202, "reset password as e-mail", "POST", "/api/v1/auth/reset", jsonBody(t, map[string]string{"email": password}))

	// A password reset through the SMTP sink, and sign-in with the new
	// password.
	rec.do(e, 202, "reset", "POST", "/api/v1/auth/reset", `{"email":"`+email+`"}`)
	var resetMail string
	eventually(t, "the reset mail", func() bool {
		for _, m := range sink.all() {
			if strings.Contains(m, "vgr_") {
				resetMail = m
				return true
			}
		}
		return false
	})
	resetToken := regexp.MustCompile(`vgr_[A-Za-z0-9_-]+`).FindString(strings.ReplaceAll(resetMail, "=\r\n", ""))
	if len(resetToken) < 20 {
		t.Fatalf("no reset token in the mail:\n%s", resetMail)
	}
	rec.do(e, 200, "reset confirm", "POST", "/api/v1/auth/reset/confirm", jsonBody(t, map[string]string{"token": resetToken, "password": newPass}))
	w.clk.Advance(30 * time.Second)
	f := newBrowser(t, w.a)
	rec.do(f, 200, "login new password", "POST", "/api/v1/auth/login", jsonBody(t, map[string]string{"email": email, "password": newPass}))
	code2 := mfa.TOTPCode(seed, w.clk.Now())
	rec.do(f, 200, "totp 2", "POST", "/api/v1/auth/totp", `{"code":"`+code2+`"}`)
	rec.do(f, 204, "logout", "POST", "/api/v1/auth/logout", "")

	// A reset mail the SMTP server refuses, echoing the credentials in
	// its reply: the warning in the log carries neither them nor the link.
	sink.mu.Lock()
	sink.refuse = true
	sink.mu.Unlock()
	rec.do(e, 202, "reset refused by SMTP", "POST", "/api/v1/auth/reset", `{"email":"`+email+`"}`)
	eventually(t, "the log of the refused mail", func() bool { return strings.Contains(logs.String(), "account mail not sent") })

	var audit strings.Builder
	recs, err := w.a.Store().ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 15 {
		t.Fatalf("%d audit records, want the whole flow", len(recs))
	}
	for _, r := range recs {
		fmt.Fprintf(&audit, "%s|%s|%s|%s|%s|%s|%s|%s\n", r.OrgID, r.Actor, r.SourceIP, r.Action, r.ObjectType, r.ObjectID, r.Outcome, r.Details)
	}
	stop() // the log is complete, shutdown included

	canaries := []canary{
		{name: "password", value: password},
		{name: "wrong password", value: wrongPass},
		{name: "new password", value: newPass},
		{name: "SMTP password", value: smtpPass},
		{name: "webhook key", value: webhookKey},
		{name: "bootstrap token", value: w.token},
		{name: "reset token", value: resetToken},
		{name: "TOTP seed (base32)", value: seedB32, in: []string{"totp enrol"}},
		{name: "TOTP seed (hex)", value: hex.EncodeToString(seed)},
		{name: "TOTP seed (base64)", value: base64.StdEncoding.EncodeToString(seed)},
		{name: "API token", value: apiToken, in: []string{"create token"}},
		{name: "API token secret", value: apiSecret, in: []string{"create token"}},
	}
	for i, code := range []string{code0, code1, wrongCode, code2} {
		canaries = append(canaries, canary{name: "TOTP code " + strconv.Itoa(i), value: code, code: true})
	}
	for i, rc := range recovery {
		canaries = append(canaries,
			canary{name: "recovery code " + strconv.Itoa(i), value: rc, in: []string{"totp confirm"}},
			canary{name: "recovery code " + strconv.Itoa(i) + " (normalised)", value: strings.ReplaceAll(rc, "-", "")})
	}
	cookies := 0
	for v, name := range rec.cookies {
		cookies++
		canaries = append(canaries, canary{name: "cookie " + name, value: v})
	}
	if cookies < 6 {
		t.Fatalf("saw %d cookie values, want the sessions and device cookies of 6 sign-ins", cookies)
	}

	log := logs.String()
	if !strings.Contains(log, `"level":"INFO"`) || !strings.Contains(log, `"level":"WARN"`) {
		t.Fatalf("the captured log lacks the expected entries: %q", log)
	}
	// Whatever the values: no bootstrap, reset or API token shape at all.
	if m := regexp.MustCompile(`vg[brt]_[A-Za-z0-9_-]{8,}`).FindString(log); m != "" {
		t.Errorf("the log holds a token: %.12s…", m)
	}
	t.Logf("captured %d log lines, %d audit records, %d answers, %d canaries:\n%s", strings.Count(log, "\n"), len(recs), len(rec.got), len(canaries), log)

	// Row 21's reset half: the same answer for an address with no
	// account, and a mail only for the real one.
	all := sink.all()
	if len(all) != 1 || !strings.Contains(all[0], email) {
		t.Errorf("%d mails, want the one reset mail to %s", len(all), email)
	}
	var unknownReset, realReset string
	for _, x := range rec.got {
		switch x.label {
		case "reset password as e-mail":
			unknownReset = x.body
		case "reset":
			realReset = x.body
		}
	}
	if unknownReset != realReset {
		t.Errorf("reset answers differ: no account %q, account %q", unknownReset, realReset)
	}
	mails := strings.Join(all, "\n")

	for _, c := range canaries {
		if c.foundIn(log) {
			i := strings.Index(log, c.value)
			t.Errorf("the log holds the %s: …%s…", c.name, log[max(0, i-200):min(len(log), i+len(c.value)+50)])
		}
		if c.name != "bootstrap token" && c.foundIn(out.String()) {
			t.Errorf("the terminal output holds the %s", c.name)
		}
		if c.foundIn(audit.String()) {
			t.Errorf("the audit log holds the %s", c.name)
		}
		if c.name != "reset token" && c.foundIn(mails) {
			t.Errorf("a mail holds the %s", c.name)
		}
		for _, x := range rec.got {
			want := slices.Contains(c.in, x.label)
			if got := c.foundIn(x.body); got != want {
				t.Errorf("answer %q (%d): holds the %s: %v, want %v", x.label, x.status, c.name, got, want)
			}
		}
	}
	if !strings.Contains(out.String(), w.token) {
		t.Error("the bootstrap token was not on the terminal output")
	}
	sink.mu.Lock()
	auths := sink.auths
	sink.mu.Unlock()
	if auths == 0 {
		t.Error("the mail went without SMTP AUTH: the SMTP password canary was not exercised")
	}
}
