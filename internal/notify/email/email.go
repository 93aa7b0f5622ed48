// Package email is the e-mail channel of escalation: a notify.Notifier that
// sends one alert message per Target over SMTP (github.com/wneessen/go-mail),
// with a plain-text body and an HTML alternative rendered from embedded
// templates (html/template escapes the person's name, the note and every
// other field in the HTML part).
//
// Transport security is explicit: "starttls" requires STARTTLS (a server
// that does not offer it is refused; there is no plaintext fallback),
// "implicit" is SMTPS, and "none" is accepted only with Config.Insecure, for
// tests and development. AUTH PLAIN/LOGIN refuse to send credentials over
// an unencrypted connection to anything but localhost.
//
// Each Notify opens one connection, sends one message and quits: no pool,
// no goroutine, no retry (the escalation caller retries and falls back to
// other channels). The connection is closed as soon as ctx ends. A 5xx
// reply (550 no such user, 535 bad credentials) is wrapped in
// notify.Permanent; 4xx replies, network and TLS failures are temporary.
//
// Links (console, map, acknowledge) are copied from the Message exactly as
// the caller built them from the configured public base URL; this package
// never builds a link from anything else, and drops a link that is not an
// absolute http(s) URL.
//
// Personal data (the recipient's address, the person's name, the note, the
// position) goes into the message and nowhere else: errors carry the
// operation, the SMTP reply code and the enhanced status code, never the
// server's reply text (servers echo addresses and sometimes credentials),
// the password or the content. The Message-ID is derived from the alert, the
// event and an HMAC of the recipient's address, so it is stable for a retry
// of the same notification and reveals no address.
//
// It must not import the store, the bus, the safety engine or the app; it
// imports notify (the contract), clock and config (for config.Secret).
package email

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/notify"
)

// Channel is the channel name of this notifier.
const Channel = "email"

// TLS modes.
const (
	TLSStartTLS = "starttls" // plain connect, then STARTTLS is required
	TLSImplicit = "implicit" // TLS from the first byte (SMTPS, port 465)
	TLSNone     = "none"     // no TLS at all: only with Config.Insecure
)

// Auth mechanisms.
const (
	AuthPlain = "plain"
	AuthLogin = "login"
)

// Defaults.
const (
	DefaultTimeout = 30 * time.Second
	portStartTLS   = 587
	portImplicit   = 465
	portNone       = 25
)

// Config tunes the channel. Host and From are required; the zero value of
// the rest is a STARTTLS submission on port 587 without authentication.
type Config struct {
	Host string // the SMTP server's name (also the name its certificate must carry)
	Port int    // 0: 587 for starttls, 465 for implicit, 25 for none
	// TLS is "starttls" (default), "implicit" or "none".
	TLS string
	// Insecure allows TLS "none". For tests and development only.
	Insecure bool
	// Username and Password for SMTP AUTH; no AUTH when Username is "".
	Username string
	Password config.Secret
	// Auth is the SASL mechanism: "plain" (default) or "login".
	Auth string
	// From is the sender, e.g. "Vigil <alerts@example.org>". Its domain is
	// the right-hand side of every Message-ID.
	From string
	// HELO is the name sent in EHLO; "" uses the machine's host name.
	HELO string
	// Timeout bounds the connection and each SMTP command; 0 means 30 s.
	Timeout time.Duration
	// RootCAs verifies the server's certificate (a private CA); nil uses the
	// system roots.
	RootCAs *x509.CertPool
	// Location is the zone shown next to UTC in the body (the
	// organisation's zone); nil shows UTC only.
	Location *time.Location
	// IDKey keys the HMAC of the recipient's address in Message-IDs. Set it
	// (from a persisted secret) to keep Message-IDs stable across restarts;
	// nil uses a random key per Notifier.
	IDKey []byte
}

// Errors.
var (
	// ErrNoStartTLS: the server does not offer STARTTLS in mode "starttls".
	ErrNoStartTLS = errors.New("email: server does not offer STARTTLS")
	// ErrConfig is wrapped by every configuration error from New.
	ErrConfig = errors.New("email: invalid config")
	// ErrAddress: the target's address is empty or not an address.
	ErrAddress = errors.New("email: invalid recipient address")
)

//go:embed templates
var templateFS embed.FS

var _ notify.Notifier = (*Notifier)(nil)

// Notifier sends alert e-mails. It is safe for concurrent use.
type Notifier struct {
	cfg    Config
	port   int
	from   *mail.Address
	domain string // Message-ID right-hand side
	idKey  []byte
	tlsCfg *tls.Config
	clk    clock.Clock
	log    *slog.Logger
	text   *texttemplate.Template
	html   *htmltemplate.Template
}

// New checks cfg and parses the templates. clk gives "now" (the Date
// header and the age of a position fix); log may be nil.
func New(cfg Config, clk clock.Clock, log *slog.Logger) (*Notifier, error) {
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg, clk: clk, log: log}
	if err := n.configure(); err != nil {
		return nil, err
	}
	var err error
	if n.text, err = texttemplate.New("alert.txt.tmpl").ParseFS(templateFS, "templates/alert.txt.tmpl"); err != nil {
		return nil, fmt.Errorf("email: parse text template: %w", err)
	}
	if n.html, err = htmltemplate.New("alert.html.tmpl").ParseFS(templateFS, "templates/alert.html.tmpl"); err != nil {
		return nil, fmt.Errorf("email: parse html template: %w", err)
	}
	return n, nil
}

func (n *Notifier) configure() error {
	c := &n.cfg
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	c.Host = strings.TrimSpace(c.Host)
	if c.Host == "" {
		return bad("host is required")
	}
	if strings.ContainsAny(c.Host, "/: \t\r\n") && net.ParseIP(c.Host) == nil {
		return bad("host must be a host name or an IP address, without port or scheme")
	}
	if c.TLS == "" {
		c.TLS = TLSStartTLS
	}
	switch c.TLS {
	case TLSStartTLS:
		n.port = portStartTLS
	case TLSImplicit:
		n.port = portImplicit
	case TLSNone:
		if !c.Insecure {
			return bad(`tls "none" sends mail in plaintext: it needs the insecure flag (tests and development only)`)
		}
		n.port = portNone
	default:
		return bad("tls must be %q, %q or %q", TLSStartTLS, TLSImplicit, TLSNone)
	}
	if c.Port != 0 {
		if c.Port < 1 || c.Port > 65535 {
			return bad("port %d out of range", c.Port)
		}
		n.port = c.Port
	}
	if c.Username == "" && c.Password.Reveal() != "" {
		return bad("password given without username")
	}
	switch c.Auth {
	case "", AuthPlain, AuthLogin:
	default:
		return bad("auth must be %q or %q", AuthPlain, AuthLogin)
	}
	if c.From == "" {
		return bad("from is required")
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return bad("from is not an e-mail address")
	}
	n.from = from
	n.domain = "vigil.invalid"
	if at := strings.LastIndexByte(from.Address, '@'); at >= 0 && validIDPart(from.Address[at+1:], true) {
		n.domain = from.Address[at+1:]
	}
	if c.Timeout < 0 {
		return bad("timeout must not be negative")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	n.idKey = c.IDKey
	if len(n.idKey) == 0 {
		n.idKey = make([]byte, 32)
		_, _ = rand.Read(n.idKey) // never fails (crypto/rand panics instead)
	}
	n.tlsCfg = &tls.Config{ServerName: c.Host, RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12}
	return nil
}

// Channel returns "email".
func (n *Notifier) Channel() string { return Channel }

// Notify sends m to one recipient and returns when the server has taken it
// (250 after DATA), refused it, or ctx ended. Receipt.ProviderID is the
// Message-ID, angle brackets included.
func (n *Notifier) Notify(ctx context.Context, to notify.Target, m notify.Message) (notify.Receipt, error) {
	if to.Channel != "" && to.Channel != Channel {
		return notify.Receipt{}, notify.Permanent(fmt.Errorf("email: notify: target is for channel %q", safeToken(to.Channel)))
	}
	rcpt, err := mail.ParseAddress(strings.TrimSpace(to.Address))
	if err != nil || strings.ContainsAny(rcpt.Address, "\r\n") {
		return notify.Receipt{}, notify.Permanent(fmt.Errorf("email: notify alert %s: %w", safeToken(m.AlertID), ErrAddress))
	}
	msg, msgID, err := n.compose(rcpt.Address, to.Name, m)
	if err != nil {
		return notify.Receipt{}, fmt.Errorf("email: compose alert %s: %w", safeToken(m.AlertID), err)
	}
	if err := n.send(ctx, msg, secrets{n.cfg.Password.Reveal(), rcpt.Address, to.Name}); err != nil {
		return notify.Receipt{Attempts: 1}, fmt.Errorf("email: notify alert %s: %w", safeToken(m.AlertID), err)
	}
	n.log.DebugContext(ctx, "email sent", "alert_id", safeToken(m.AlertID), "event", string(m.Event), "step", m.Step, "attempt", m.Attempt)
	return notify.Receipt{ProviderID: msgID, Attempts: 1}, nil
}

// session is the state of one Notify's connection.
type session struct {
	mu          sync.Mutex
	conn        net.Conn
	stop        func() bool // unregisters the ctx watcher
	authStarted bool
}

func (s *session) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
	}
	if s.conn != nil {
		_ = s.conn.Close()
	}
}

func (s *session) authBegan() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authStarted
}

// send delivers msg on a fresh connection.
func (n *Notifier) send(ctx context.Context, msg *gomail.Msg, sec secrets) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	s := &session{}
	defer s.close()
	client, err := n.client(ctx, s)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("connect: %w", ctx.Err())
		}
		return classifyDial(err, s.authBegan(), sec)
	}
	if err := client.SendWithSMTPClient(sc, msg); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("send: %w", ctx.Err())
		}
		return classifySend(err, sec)
	}
	// The message is taken (250 after DATA): a failing QUIT changes nothing.
	_ = client.CloseWithSMTPClient(sc)
	return nil
}

// client builds a go-mail client for one connection: its dialer records
// the connection in s and closes it when ctx ends, so no SMTP command
// outlives ctx.
func (n *Notifier) client(ctx context.Context, s *session) (*gomail.Client, error) {
	c := n.cfg
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		if c.TLS == TLSImplicit {
			tc := tls.Client(conn, n.tlsCfg.Clone())
			if err := tc.HandshakeContext(dctx); err != nil {
				_ = conn.Close()
				return nil, err
			}
			conn = tc
		}
		s.mu.Lock()
		s.conn = conn
		s.stop = context.AfterFunc(ctx, func() { _ = conn.Close() })
		s.mu.Unlock()
		return conn, nil
	}
	opts := []gomail.Option{
		gomail.WithPort(n.port),
		gomail.WithTimeout(c.Timeout),
		gomail.WithTLSConfig(n.tlsCfg.Clone()),
		gomail.WithDialContextFunc(dial),
		gomail.WithoutNoop(),
	}
	switch c.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL()) // TLS is done by dial; this only skips STARTTLS
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if c.HELO != "" {
		opts = append(opts, gomail.WithHELO(c.HELO))
	}
	if c.Username != "" {
		// The standard PLAIN/LOGIN mechanisms refuse an unencrypted
		// connection except to localhost; the recorder tells a failure
		// during AUTH from one before it.
		var a gosmtp.Auth
		if c.Auth == AuthLogin {
			a = gosmtp.LoginAuth(c.Username, c.Password.Reveal(), c.Host, false)
		} else {
			a = gosmtp.PlainAuth("", c.Username, c.Password.Reveal(), c.Host, false)
		}
		opts = append(opts, gomail.WithSMTPAuthCustom(authRecorder{a, s}))
	}
	return gomail.NewClient(c.Host, opts...)
}

// authRecorder notes in its session that AUTH began.
type authRecorder struct {
	gosmtp.Auth
	s *session
}

func (a authRecorder) Start(server *gosmtp.ServerInfo) (string, []byte, error) {
	a.s.mu.Lock()
	a.s.authStarted = true
	a.s.mu.Unlock()
	return a.Auth.Start(server)
}

// compose builds the message for one recipient.
func (n *Notifier) compose(addr, name string, m notify.Message) (*gomail.Msg, string, error) {
	now := n.clk.Now()
	v := n.view(m, now)
	var text, html strings.Builder
	if err := n.text.Execute(&text, v); err != nil {
		return nil, "", fmt.Errorf("render text: %w", err)
	}
	if err := n.html.Execute(&html, v); err != nil {
		return nil, "", fmt.Errorf("render html: %w", err)
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(n.from)
	msg.ToMailAddress(&mail.Address{Name: oneLine(name, 80), Address: addr})
	msg.Subject(v.Subject)
	msg.SetDateWithValue(now)
	id := n.messageID(m, addr)
	msg.SetMessageIDWithValue(id)
	root := "<" + n.threadID(m) + ">"
	msg.SetGenHeader(gomail.HeaderInReplyTo, root)
	msg.SetGenHeader(gomail.HeaderReferences, root)
	msg.SetGenHeader(gomail.Header(HeaderAlertID), idPart(m.AlertID))
	msg.SetGenHeader(gomail.Header(HeaderEvent), safeToken(string(m.Event)))
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	msg.SetUserAgent("Vigil")
	switch m.Event {
	case notify.EventRaised, notify.EventReminder, notify.EventExhausted:
		msg.SetImportance(gomail.ImportanceHigh)
	}
	msg.SetBodyString(gomail.TypeTextPlain, text.String())
	msg.AddAlternativeString(gomail.TypeTextHTML, html.String())
	return msg, "<" + id + ">", nil
}

// Headers that carry the alert for threading and filtering.
const (
	HeaderAlertID = "X-Vigil-Alert-ID"
	HeaderEvent   = "X-Vigil-Event"
)

// messageID is stable for one notification to one recipient: the same
// alert, event, step and attempt to the same address give the same id, so a
// retried delivery is recognisably a duplicate.
func (n *Notifier) messageID(m notify.Message, addr string) string {
	h := hmac.New(sha256.New, n.idKey)
	h.Write([]byte(strings.ToLower(addr)))
	tag := hex.EncodeToString(h.Sum(nil)[:6])
	return fmt.Sprintf("vigil.%s.%s.%d.%d.%s@%s", idPart(m.AlertID), safeToken(string(m.Event)), m.Step, m.Attempt, tag, n.domain)
}

// threadID is the (never sent) root every message about one alert refers
// to, so mail clients thread reminders, cancellation and resolution.
func (n *Notifier) threadID(m notify.Message) string {
	return fmt.Sprintf("vigil.%s@%s", idPart(m.AlertID), n.domain)
}

// idPart makes s safe inside a Message-ID: itself if it is a plain token,
// else its hex encoding (at most 64 bytes of it).
func idPart(s string) string {
	if s == "" {
		return "none"
	}
	if validIDPart(s, false) && len(s) <= 128 {
		return s
	}
	if len(s) > 64 {
		s = s[:64]
	}
	return "x" + hex.EncodeToString([]byte(s))
}

func validIDPart(s string, dots bool) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		case r == '.' && dots:
		default:
			return false
		}
	}
	return true
}

// safeToken is s for error text and headers when it is a short plain
// token (an id, an event name), else a placeholder.
func safeToken(s string) string {
	if validIDPart(s, true) && len(s) <= 64 {
		return s
	}
	return "[invalid:" + strconv.Itoa(len(s)) + "]"
}
