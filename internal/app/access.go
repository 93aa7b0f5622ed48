package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/audit"
	"vigil/internal/auth"
	"vigil/internal/auth/mfa"
	"vigil/internal/auth/oidc"
	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/seal"
	"vigil/internal/store"
)

// Per-install secret files in the data directory, each 0600.
const (
	sealKeyFile    = "seal.key"    // seals TOTP seeds (and later personal data)
	sessionKeyFile = "session.key" // signs device cookies, pseudonymises accounts in the audit log
)

// setupAccess builds the audit log and the sign-in service and gives them
// to the API.
func (a *App) setupAccess(ctx context.Context) error {
	var mailer auth.Mailer
	if a.mail != nil {
		mailer = a.mail
	}
	var err error
	a.auth, a.audit, err = buildAccess(a.cfg, a.store, a.deps.Clock, a.log, mailer, func(org, name string, data []byte) {
		if _, err := a.hub.Publish(org, name, data); err != nil {
			a.log.Warn("console notice not published", "org_id", org, "event", name, "err", err)
		}
	})
	if err != nil {
		return err
	}
	g := a.auth.Guard()
	a.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_password_hashes_total",
		Help: "argon2id hashes computed (sign-ins, password changes)."}, func() float64 { return float64(g.Hashes()) }))

	tok, err := a.auth.EnsureBootstrapToken(ctx)
	if err != nil {
		return err
	}
	if tok != "" {
		fmt.Fprintf(a.deps.Out, "\nFirst start: one-time bootstrap token for creating the first admin (shown only now, valid 24 h):\n\n    %s\n\n"+
			"Create the admin with POST /api/v1/auth/bootstrap (docs/access.md).\n\n", tok)
	}
	return nil
}

// buildAccess loads (or, on first use, creates) the install's secret files
// and builds the audit log and the sign-in service on st.
func buildAccess(c config.Config, st store.Store, clk clock.Clock, log *slog.Logger, mailer auth.Mailer, notice func(org, name string, data []byte)) (*auth.Service, *audit.Log, error) {
	sealer, err := seal.LoadOrCreateKeyFile(filepath.Join(c.DataDir, sealKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("seal key: %w", err)
	}
	akey, err := audit.LoadOrCreateKey(filepath.Join(c.DataDir, audit.KeyFileName))
	if err != nil {
		return nil, nil, fmt.Errorf("audit signing key: %w", err)
	}
	al := audit.New(st, akey, log.With("component", "audit"), clk, audit.Config{})
	skey, err := loadOrCreateSecret(filepath.Join(c.DataDir, sessionKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("session key: %w", err)
	}
	cfg := auth.Config{Clock: clk, Log: log.With("component", "auth"), BaseURL: c.Notify.BaseURL,
		DeviceKey: skey, IdleTimeout: c.Auth.IdleTimeout, MaxLifetime: c.Auth.MaxLifetime, Mailer: mailer, Notice: notice}
	if base := c.Notify.BaseURL; base != "" {
		u, err := url.Parse(base)
		if err != nil {
			return nil, nil, fmt.Errorf("notify.base_url: %w", err)
		}
		if cfg.WebAuthn, err = mfa.NewWebAuthn(u.Hostname(), "Vigil", []string{u.Scheme + "://" + u.Host}); err != nil {
			return nil, nil, fmt.Errorf("webauthn: %w", err)
		}
	}
	if c.Notify.BaseURL != "" {
		// Single sign-on: the install's provider (config) if any, and
		// organisations' own providers (set by their admins) through the
		// SSRF-safe client, since those URLs are tenant-chosen.
		var hc *http.Client
		if c.Auth.OIDCIssuer != "" {
			var err error
			if hc, err = idpClient(c.Notify.OutboundCAFile); err != nil {
				return nil, nil, err
			}
		}
		orgHC, _, err := outboundClient(c.Notify)
		if err != nil {
			return nil, nil, err
		}
		cfg.SSO = auth.NewSSO(oidc.Config{Issuer: c.Auth.OIDCIssuer, ClientID: c.Auth.OIDCClientID,
			ClientSecret: c.Auth.OIDCClientSecret.Reveal(), RedirectURL: strings.TrimRight(c.Notify.BaseURL, "/") + "/api/v1/auth/oidc/callback",
			HTTPClient: hc, Clock: clk}, orgHC)
	}
	return auth.New(st, sealer, al, cfg), al, nil
}

// idpClient reaches the identity provider: system roots plus the
// configured private CA, a timeout on every request.
func idpClient(caFile string) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("notify.outbound_ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("notify.outbound_ca_file %s: no PEM certificate in it", caFile)
		}
	}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}, nil
}

// Access is the store, the audit log and the sign-in service of the
// server's own data, for a CLI command (tokens, users, audit).
type Access struct {
	Store store.Store
	Audit *audit.Log
	Auth  *auth.Service
}

// Close closes the store.
func (a *Access) Close() error { return a.Store.Close() }

// OpenAccess opens the store and the sign-in service of the data in c.
func OpenAccess(ctx context.Context, c config.Config, log *slog.Logger) (*Access, error) {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	st, err := OpenStore(ctx, c)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	svc, al, err := buildAccess(c, st, clock.Real{}, log, nil, nil)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &Access{Store: st, Audit: al, Auth: svc}, nil
}

// Auth returns the sign-in service (for the CLI and tests).
func (a *App) Auth() *auth.Service { return a.auth }

// loadOrCreateSecret reads a 32-byte secret file, creating it (0600) on
// first use; a file others may read is refused.
func loadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		if _, err := f.Write(b); err != nil {
			_ = f.Close()
			return nil, err
		}
		return b, f.Close()
	}
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("%s: want 32 bytes, found %d", path, len(b))
	}
	return b, nil
}

// mailQueue sends account mails (invitations, resets) one at a time in
// the background, so a request never waits on, or reveals by its timing,
// the mail server. Its goroutine is started in Start.
type mailQueue struct {
	send func(ctx context.Context, to, subject, body string) error
	ch   chan mailJob
	app  *App
}

type mailJob struct{ to, subject, body string }

func (q *mailQueue) SendLink(_ context.Context, to, subject, text, link string) error {
	select {
	case q.ch <- mailJob{to, subject, text + "\n\n    " + link + "\n\nIf you did not expect this mail, ignore it.\n"}:
		return nil
	default:
		return errors.New("mail queue full")
	}
}

func (q *mailQueue) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-q.ch:
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			if err := q.send(sctx, j.to, j.subject, j.body); err != nil {
				q.app.log.Warn("account mail not sent", "err", err)
			}
			cancel()
		}
	}
}
