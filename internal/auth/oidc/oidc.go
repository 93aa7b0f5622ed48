// Package oidc signs people in through an outside OpenID Connect identity
// provider (single sign-on). It runs discovery, starts the authorization
// code flow with PKCE (S256), a 256-bit state and a 256-bit nonce, and on
// the callback exchanges the code and verifies the ID token: signature
// against the provider's JWKS (go-oidc's verifier: no "none", no HMAC),
// issuer, audience (and azp), expiry on an injected clock, nonce and, when
// present, at_hash. It reports who signed in and whether the provider says
// a second factor was used (the amr claim, RFC 8176); the caller decides
// whether Vigil still asks for its own factor, and links Identity.Subject
// to a user.
//
// It is a client of the provider only: it keeps no state, serves no route
// and touches no database. The caller keeps the pending bytes from Begin
// bound to the browser (sealed, or server-side), makes them single-use, and
// serves the callback route.
//
// It must not import any other Vigil package but vigil/internal/clock (it is
// a leaf under internal/auth and internal/web), nor database/sql, a store
// driver, the bus, or testing; TestDeps enforces this.
//
// Non-obvious: a Provider is safe for concurrent use. It caches the
// provider's signing keys and fetches them again when a token names a key
// it does not know; go-oidc does that fetch in a goroutine of its own with
// no cancellation, so the HTTP client must have a timeout (the default one
// does). Responses from the provider are capped at 1 MiB. Error text never
// contains the authorization code, a token, the PKCE verifier or the client
// secret; Config, Provider and Identity print without secrets or personal
// data.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"vigil/internal/clock"
)

var (
	// ErrState means the callback does not belong to the pending login: the
	// state differs, the pending bytes do not parse, or the login was
	// started too long ago.
	ErrState = errors.New("oidc: state mismatch")
	// ErrToken means the ID token failed verification or is missing.
	ErrToken = errors.New("oidc: invalid ID token")
	// ErrExchange means the provider's token endpoint refused the code or
	// could not be reached (a wrong PKCE verifier, a reused or expired code).
	ErrExchange = errors.New("oidc: code exchange failed")
)

const (
	// DefaultPendingTTL is how long a started login may take by default.
	DefaultPendingTTL = 10 * time.Minute
	// defaultTimeout bounds each request to the provider when the caller
	// passes no client.
	defaultTimeout = 15 * time.Second
	// maxResponse caps every response body read from the provider.
	maxResponse = 1 << 20
	// pendingSkew is how far in the future a pending login's start may lie
	// (a clock stepped back between Begin and Finish).
	pendingSkew = time.Minute
)

// defaultScopes and defaultAMR are copied into each Provider.
func defaultScopes() []string { return []string{gooidc.ScopeOpenID, "email", "profile"} }

func defaultAMR() []string { return []string{"mfa", "otp", "hwk", "fpt", "face", "sc"} }

// Config configures a Provider. Issuer, ClientID and RedirectURL are
// required; the rest has working defaults.
type Config struct {
	// Issuer is the provider's https URL, exactly as it names itself in its
	// tokens; discovery is at Issuer + "/.well-known/openid-configuration".
	Issuer string
	// ClientID is Vigil's client id at the provider.
	ClientID string
	// ClientSecret authenticates Vigil at the token endpoint
	// (client_secret_basic, or client_secret_post when the provider only
	// offers that). Empty means a public client (PKCE only).
	ClientSecret string
	// RedirectURL is the https callback URL registered at the provider,
	// built by the caller from its configured base URL only, e.g.
	// https://vigil.example.org/api/v1/auth/oidc/callback.
	RedirectURL string
	// Scopes asked for; they must include "openid". Default: openid email
	// profile.
	Scopes []string
	// AcceptAMR lists the amr values (RFC 8176) that count as a second
	// factor done at the provider. Default: mfa otp hwk fpt face sc.
	AcceptAMR []string
	// HTTPClient reaches the provider. Default: a client with a 15 s
	// timeout. A client without a timeout lets a stalled provider hold key
	// fetches for ever.
	HTTPClient *http.Client
	// Clock checks token expiry and the age of pending logins. Default:
	// the real clock.
	Clock clock.Clock
	// PendingTTL is how long after Begin the callback is still accepted.
	// Default: DefaultPendingTTL.
	PendingTTL time.Duration
}

// Format prints the configuration without the client secret, for every
// verb.
func (c Config) Format(f fmt.State, _ rune) {
	secret := "unset"
	if c.ClientSecret != "" {
		secret = "[redacted]"
	}
	fmt.Fprintf(f, "oidc.Config{Issuer: %q, ClientID: %q, ClientSecret: %s, RedirectURL: %q, Scopes: %q, AcceptAMR: %q}",
		c.Issuer, c.ClientID, secret, c.RedirectURL, c.Scopes, c.AcceptAMR)
}

// LogValue hides the client secret from slog.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("issuer", c.Issuer), slog.String("client_id", c.ClientID),
		slog.String("redirect_url", c.RedirectURL))
}

// Provider signs people in at one identity provider. Make one with New; it
// is safe for concurrent use.
type Provider struct {
	issuer     string
	oauth      oauth2.Config
	verifier   *gooidc.IDTokenVerifier
	client     *http.Client
	clock      clock.Clock
	acceptAMR  []string
	pendingTTL time.Duration
}

// Format prints the provider's issuer and client id only.
func (p *Provider) Format(f fmt.State, _ rune) {
	if p == nil {
		_, _ = io.WriteString(f, "oidc.Provider(nil)")
		return
	}
	fmt.Fprintf(f, "oidc.Provider(%s, client %q)", p.issuer, p.oauth.ClientID)
}

// LogValue hides the client secret from slog.
func (p *Provider) LogValue() slog.Value {
	if p == nil {
		return slog.StringValue("oidc.Provider(nil)")
	}
	return slog.GroupValue(slog.String("issuer", p.issuer), slog.String("client_id", p.oauth.ClientID))
}

// Issuer returns the provider's issuer URL.
func (p *Provider) Issuer() string { return p.issuer }

// discovery holds the metadata fields go-oidc does not check for us.
type discovery struct {
	AuthURL              string   `json:"authorization_endpoint"`
	TokenURL             string   `json:"token_endpoint"`
	JWKSURL              string   `json:"jwks_uri"`
	CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
	TokenAuthMethods     []string `json:"token_endpoint_auth_methods_supported"`
	ResponseTypes        []string `json:"response_types_supported"`
}

// New checks cfg and runs discovery at the issuer. Its errors name what
// failed (the setting or the URL), never the client secret.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := checkHTTPS(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("oidc: issuer %q: %w", cfg.Issuer, err)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("oidc: client id is empty")
	}
	if err := checkHTTPS(cfg.RedirectURL); err != nil {
		return nil, fmt.Errorf("oidc: redirect URL %q: %w", cfg.RedirectURL, err)
	}
	scopes := slices.Clone(cfg.Scopes)
	if len(scopes) == 0 {
		scopes = defaultScopes()
	}
	if !slices.Contains(scopes, gooidc.ScopeOpenID) {
		return nil, fmt.Errorf("oidc: scopes %q: %q is required", scopes, gooidc.ScopeOpenID)
	}
	amr := slices.Clone(cfg.AcceptAMR)
	if len(amr) == 0 {
		amr = defaultAMR()
	}
	ttl := cfg.PendingTTL
	if ttl <= 0 {
		ttl = DefaultPendingTTL
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	client := capBodies(cfg.HTTPClient)

	wellKnown := strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration"
	gp, err := gooidc.NewProvider(gooidc.ClientContext(ctx, client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery at %s: %w", wellKnown, shorten(err))
	}
	var meta discovery
	if err := gp.Claims(&meta); err != nil {
		return nil, fmt.Errorf("oidc: discovery at %s: %w", wellKnown, err)
	}
	for _, e := range []struct{ name, url string }{
		{"authorization_endpoint", meta.AuthURL},
		{"token_endpoint", meta.TokenURL},
		{"jwks_uri", meta.JWKSURL},
	} {
		if err := checkHTTPS(e.url); err != nil {
			return nil, fmt.Errorf("oidc: discovery at %s: %s %q: %w", wellKnown, e.name, e.url, err)
		}
	}
	if len(meta.ResponseTypes) > 0 && !slices.Contains(meta.ResponseTypes, "code") {
		return nil, fmt.Errorf("oidc: discovery at %s: provider does not offer the code flow (response_types_supported %q)",
			wellKnown, meta.ResponseTypes)
	}
	// PKCE is always sent; a provider that says it cannot check S256 would
	// silently drop the protection.
	if len(meta.CodeChallengeMethods) > 0 && !slices.Contains(meta.CodeChallengeMethods, "S256") {
		return nil, fmt.Errorf("oidc: discovery at %s: provider does not support PKCE S256 (code_challenge_methods_supported %q)",
			wellKnown, meta.CodeChallengeMethods)
	}
	style, err := authStyle(meta.TokenAuthMethods, cfg.ClientSecret != "")
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery at %s: %w", wellKnown, err)
	}
	endpoint := gp.Endpoint()
	endpoint.AuthStyle = style

	return &Provider{
		issuer: cfg.Issuer,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  cfg.RedirectURL,
			Scopes:       scopes,
		},
		// Verifier (not VerifierContext): the key set keeps the client
		// given to NewProvider and no request's context. Signing
		// algorithms are those the provider advertises that go-oidc
		// supports (never none or HMAC), RS256 when it advertises none.
		verifier:   gp.Verifier(&gooidc.Config{ClientID: cfg.ClientID, Now: clk.Now}),
		client:     client,
		clock:      clk,
		acceptAMR:  amr,
		pendingTTL: ttl,
	}, nil
}

// authStyle picks how Vigil authenticates at the token endpoint from the
// methods the provider advertises (absent means client_secret_basic, RFC
// 8414 and OpenID Discovery), instead of oauth2's trial and error.
func authStyle(methods []string, hasSecret bool) (oauth2.AuthStyle, error) {
	if !hasSecret {
		// A public client sends only client_id in the form.
		if len(methods) > 0 && !slices.Contains(methods, "none") {
			return 0, fmt.Errorf("client secret is empty but the provider requires client authentication (token_endpoint_auth_methods_supported %q)", methods)
		}
		return oauth2.AuthStyleInParams, nil
	}
	switch {
	case len(methods) == 0 || slices.Contains(methods, "client_secret_basic"):
		return oauth2.AuthStyleInHeader, nil
	case slices.Contains(methods, "client_secret_post"):
		return oauth2.AuthStyleInParams, nil
	}
	return 0, fmt.Errorf("provider offers neither client_secret_basic nor client_secret_post (token_endpoint_auth_methods_supported %q)", methods)
}

// checkHTTPS accepts an absolute https URL with a host and no fragment.
func checkHTTPS(raw string) error {
	if raw == "" {
		return errors.New("is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL")
	}
	if u.Scheme != "https" || u.Host == "" {
		return errors.New("must be an absolute https URL")
	}
	if u.Fragment != "" || u.User != nil {
		return errors.New("must not have a fragment or user info")
	}
	return nil
}

// Begin starts a login. It returns the provider URL to send the browser to
// and the pending login to keep, bound to that browser, until the callback:
// opaque bytes holding the state, the nonce, the PKCE verifier and the start
// time. They are secret (the verifier and nonce guard the code): keep them
// server-side or seal them, and use them once.
func (p *Provider) Begin() (authURL string, pending []byte, err error) {
	pd := pendingLogin{created: p.clock.Now()}
	for _, b := range [][]byte{pd.state[:], pd.nonce[:], pd.verifier[:]} {
		if _, err := rand.Read(b); err != nil {
			return "", nil, fmt.Errorf("oidc: begin login: %w", err)
		}
	}
	authURL = p.oauth.AuthCodeURL(pd.stateString(),
		gooidc.Nonce(pd.nonceString()),
		oauth2.S256ChallengeOption(pd.verifierString()))
	return authURL, pd.marshal(), nil
}

// Finish completes the login whose pending bytes Begin returned, given the
// state and code from the callback's query. It checks the state, exchanges
// the code with the PKCE verifier, verifies the ID token and returns who
// signed in. Errors wrap ErrState, ErrExchange or ErrToken. The caller
// handles a callback carrying an error parameter itself (the user refused
// or the provider failed) and must not call Finish for it.
func (p *Provider) Finish(ctx context.Context, pending []byte, state, code string) (Identity, error) {
	pd, err := parsePending(pending)
	if err != nil {
		return Identity{}, err
	}
	now := p.clock.Now()
	if now.After(pd.created.Add(p.pendingTTL)) || now.Before(pd.created.Add(-pendingSkew)) {
		return Identity{}, fmt.Errorf("%w: login was not started within the last %v", ErrState, p.pendingTTL)
	}
	if subtle.ConstantTimeCompare([]byte(state), []byte(pd.stateString())) != 1 {
		return Identity{}, fmt.Errorf("%w: callback state differs from the pending login", ErrState)
	}
	if code == "" {
		return Identity{}, fmt.Errorf("%w: callback carries no code", ErrExchange)
	}

	secrets := []string{code, p.oauth.ClientSecret, pd.verifierString(), pd.nonceString()}
	tok, err := p.oauth.Exchange(gooidc.ClientContext(ctx, p.client), code, oauth2.VerifierOption(pd.verifierString()))
	if err != nil {
		return Identity{}, exchangeError(err, secrets)
	}
	secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, fmt.Errorf("%w: token response has no id_token", ErrToken)
	}
	secrets = append(secrets, raw)
	fail := func(cause error) (Identity, error) {
		return Identity{}, fmt.Errorf("%w: %w", ErrToken, scrub(cause, secrets))
	}

	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return fail(err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pd.nonceString())) != 1 {
		return fail(errors.New("nonce differs from the pending login"))
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return fail(err)
		}
	}
	if err := checkSubject(idt.Subject); err != nil {
		return fail(err)
	}
	var c struct {
		AZP           *string         `json:"azp"`
		Email         string          `json:"email"`
		EmailVerified json.RawMessage `json:"email_verified"`
		Name          string          `json:"name"`
		AMR           json.RawMessage `json:"amr"`
	}
	if err := idt.Claims(&c); err != nil {
		return fail(errors.New("claims do not decode"))
	}
	// OpenID Connect Core 3.1.3.7: several audiences need azp, and azp
	// must name this client.
	if c.AZP != nil && *c.AZP != p.oauth.ClientID || c.AZP == nil && len(idt.Audience) > 1 {
		return fail(errors.New("azp does not name this client"))
	}
	verified, err := parseBoolish(c.EmailVerified)
	if err != nil {
		return fail(fmt.Errorf("email_verified: %w", err))
	}
	amr, err := parseAMR(c.AMR)
	if err != nil {
		return fail(fmt.Errorf("amr: %w", err))
	}
	return Identity{
		Subject:       idt.Issuer + " " + idt.Subject,
		Email:         c.Email,
		EmailVerified: verified,
		Name:          c.Name,
		MFA:           slices.ContainsFunc(amr, func(v string) bool { return slices.Contains(p.acceptAMR, v) }),
		AMR:           amr,
	}, nil
}

// Identity is who signed in at the provider.
type Identity struct {
	// Subject is the issuer, a space and the sub claim: the stable key to
	// link to a Vigil user (store.User.OIDCSubject). Never the e-mail.
	Subject string
	// Email is the email claim, possibly empty; trust it for matching only
	// if EmailVerified.
	Email string
	// EmailVerified is the email_verified claim (false when absent).
	EmailVerified bool
	// Name is the name claim, possibly empty.
	Name string
	// MFA reports that AMR holds a value of Config.AcceptAMR: the
	// provider says a second factor was used.
	MFA bool
	// AMR is the amr claim as sent.
	AMR []string
}

// Format prints the identity without personal data, for every verb.
func (id Identity) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "oidc.Identity{MFA: %t, AMR: %q, EmailVerified: %t}", id.MFA, id.AMR, id.EmailVerified)
}

// LogValue hides personal data (subject, e-mail, name) from slog.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("mfa", id.MFA), slog.Any("amr", id.AMR),
		slog.Bool("email_verified", id.EmailVerified))
}

// checkSubject enforces OpenID Connect Core 2: sub is present and at most
// 255 characters; control characters are refused too.
func checkSubject(sub string) error {
	if sub == "" {
		return errors.New("sub is empty")
	}
	if len(sub) > 255 || !utf8.ValidString(sub) || strings.ContainsFunc(sub, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errors.New("sub is malformed")
	}
	return nil
}

// parseBoolish reads email_verified: a JSON boolean, or the strings "true"
// and "false" some providers send; absent or null is false.
func parseBoolish(raw json.RawMessage) (bool, error) {
	switch string(raw) {
	case "", "null", "false", `"false"`:
		return false, nil
	case "true", `"true"`:
		return true, nil
	}
	return false, errors.New("is not a boolean")
}

// parseAMR reads amr: an array of strings; absent or null is none.
func parseAMR(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var amr []string
	if err := json.Unmarshal(raw, &amr); err != nil {
		return nil, errors.New("is not an array of strings")
	}
	return amr, nil
}

// exchangeError turns an oauth2 exchange failure into safe text: the token
// endpoint's status and RFC 6749 error code, never its body.
func exchangeError(err error, secrets []string) error {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Errorf("%w: token endpoint answered %d %s", ErrExchange, status, safeErrorCode(re.ErrorCode))
	}
	return fmt.Errorf("%w: %w", ErrExchange, scrub(err, secrets))
}

// safeErrorCode passes an RFC 6749 error code made of [A-Za-z0-9_.-] (at
// most 64 bytes) and names anything else only by its absence.
func safeErrorCode(code string) string {
	if code == "" {
		return "(no error code)"
	}
	if len(code) > 64 || strings.ContainsFunc(code, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
	}) {
		return "(non-standard error code)"
	}
	return code
}

// scrub returns err, or a stand-in without its text if that text contains
// one of the secrets (a library quoting a request or a response).
func scrub(err error, secrets []string) error {
	msg := err.Error()
	for _, s := range secrets {
		if len(s) >= 8 && strings.Contains(msg, s) {
			return errors.New("details withheld: the error quoted a secret")
		}
	}
	return err
}

// maxErrorText bounds an error from go-oidc, which quotes a failed
// discovery answer's whole body (an HTML error page, say).
const maxErrorText = 300

// shorten returns err, or a stand-in with its text cut to maxErrorText.
func shorten(err error) error {
	msg := err.Error()
	if len(msg) <= maxErrorText {
		return err
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return errors.New(msg[:cut] + "…")
}

// capBodies returns a copy of c (or a default client) whose response
// bodies fail after maxResponse bytes.
func capBodies(c *http.Client) *http.Client {
	var cp http.Client
	if c != nil {
		cp = *c
	} else {
		cp.Timeout = defaultTimeout
	}
	base := cp.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cp.Transport = capTransport{base}
	return &cp
}

type capTransport struct{ base http.RoundTripper }

func (t capTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{rc: resp.Body, left: maxResponse}
	return resp, nil
}

// cappedBody fails a read past its limit instead of truncating silently.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

var errTooLarge = fmt.Errorf("oidc: provider response larger than %d bytes", maxResponse)

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Anything more is too much; one byte tells.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// pendingLogin is what Begin hands the caller to keep. Encoded (version 1):
//
//	1 byte version | 8 bytes start (Unix ns, big endian) | 32 state | 32 nonce | 32 verifier
type pendingLogin struct {
	created  time.Time
	state    [32]byte
	nonce    [32]byte
	verifier [32]byte
}

const (
	pendingVersion = 1
	pendingLen     = 1 + 8 + 3*32
)

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (pd *pendingLogin) stateString() string { return enc(pd.state[:]) }

func (pd *pendingLogin) nonceString() string { return enc(pd.nonce[:]) }

// verifierString is the PKCE code verifier: 43 characters of base64url,
// as RFC 7636 recommends for 32 random bytes.
func (pd *pendingLogin) verifierString() string { return enc(pd.verifier[:]) }

func (pd *pendingLogin) marshal() []byte {
	b := make([]byte, 0, pendingLen)
	b = append(b, pendingVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(pd.created.UnixNano()))
	b = append(b, pd.state[:]...)
	b = append(b, pd.nonce[:]...)
	b = append(b, pd.verifier[:]...)
	return b
}

// parsePending decodes bytes from Begin; anything else is ErrState.
func parsePending(b []byte) (pendingLogin, error) {
	if len(b) != pendingLen || b[0] != pendingVersion {
		return pendingLogin{}, fmt.Errorf("%w: pending login is malformed", ErrState)
	}
	ns := int64(binary.BigEndian.Uint64(b[1:9]))
	if ns <= 0 {
		return pendingLogin{}, fmt.Errorf("%w: pending login is malformed", ErrState)
	}
	pd := pendingLogin{created: time.Unix(0, ns).UTC()}
	rest := b[9:]
	copy(pd.state[:], rest[0:32])
	copy(pd.nonce[:], rest[32:64])
	copy(pd.verifier[:], rest[64:96])
	return pd, nil
}
