package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth/oidc"
	"vigil/internal/store"
)

// SSO is single sign-on through OpenID Connect providers: the install's
// own (config auth.oidc_*) and each organisation's (set by its admin,
// SetOrgSSO). Providers are discovered lazily: an unreachable provider
// costs sign-in through it, never the server.
type SSO struct {
	cfg     oidc.Config  // the install's provider (Issuer "" for none) and what every provider shares: RedirectURL, Clock
	orgHTTP *http.Client // reaches organisations' providers (SSRF-safe: they are tenant-chosen URLs)
	mu      sync.Mutex
	p       *oidc.Provider
	orgs    map[string]orgProvider
}

type orgProvider struct {
	key string // issuer, client id and secret it was built with
	p   *oidc.Provider
}

// NewSSO returns single sign-on with cfg (discovery happens at first use).
// cfg.Issuer may be empty: then only organisations' own providers work.
// orgHTTP reaches organisations' providers; it must refuse private and
// metadata addresses (internal/notify/outbound).
func NewSSO(cfg oidc.Config, orgHTTP *http.Client) *SSO {
	return &SSO{cfg: cfg, orgHTTP: orgHTTP, orgs: map[string]orgProvider{}}
}

// ErrSSOOff: single sign-on is not configured (for this organisation).
var ErrSSOOff = errors.New("auth: single sign-on is not configured")

// provider is org's identity provider ("" for the install's).
func (s *Service) provider(ctx context.Context, org string) (*oidc.Provider, error) {
	sso := s.cfg.SSO
	if sso == nil {
		return nil, ErrSSOOff
	}
	if org == "" {
		if sso.cfg.Issuer == "" {
			return nil, ErrSSOOff
		}
		sso.mu.Lock()
		defer sso.mu.Unlock()
		if sso.p == nil {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			p, err := oidc.New(cctx, sso.cfg)
			if err != nil {
				return nil, fmt.Errorf("single sign-on: %w", err)
			}
			sso.p = p
		}
		return sso.p, nil
	}
	o, err := s.st.GetOrgSSO(ctx, org)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrSSOOff
	}
	if err != nil {
		return nil, fmt.Errorf("single sign-on of %s: %w", org, err)
	}
	secret := ""
	if len(o.SecretSealed) > 0 {
		b, err := s.seal.Open(o.SecretSealed, orgSSOAAD(org))
		if err != nil {
			return nil, fmt.Errorf("single sign-on of %s: client secret: %w", org, err)
		}
		secret = string(b)
	}
	sum := sha256.Sum256([]byte(secret))
	key := o.Issuer + "\x00" + o.ClientID + "\x00" + string(sum[:])
	sso.mu.Lock()
	defer sso.mu.Unlock()
	if op, ok := sso.orgs[org]; ok && op.key == key {
		return op.p, nil
	}
	cfg := sso.cfg
	cfg.Issuer, cfg.ClientID, cfg.ClientSecret, cfg.HTTPClient = o.Issuer, o.ClientID, secret, sso.orgHTTP
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p, err := oidc.New(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("single sign-on of %s: %w", org, err)
	}
	sso.orgs[org] = orgProvider{key: key, p: p}
	return p, nil
}

func ssoAAD() []byte { return []byte("oidc-pending") }

func orgSSOAAD(org string) []byte { return []byte("org-sso-secret:" + org) }

// pendingSSO is what the browser's sealed cookie carries between the
// redirect to the provider and the callback.
type pendingSSO struct {
	Org     string `json:"o,omitempty"`
	Pending []byte `json:"p"`
}

// SSOBegin starts a sign-in at org's identity provider ("" for the
// install's): the URL to send the browser to, and the pending state sealed
// for a short-lived cookie.
func (s *Service) SSOBegin(ctx context.Context, org string) (authURL string, sealed []byte, err error) {
	p, err := s.provider(ctx, org)
	if err != nil {
		return "", nil, err
	}
	u, pending, err := p.Begin()
	if err != nil {
		return "", nil, fmt.Errorf("single sign-on: %w", err)
	}
	b, err := json.Marshal(pendingSSO{Org: org, Pending: pending})
	if err != nil {
		return "", nil, fmt.Errorf("single sign-on: %w", err)
	}
	sealed, err = s.seal.Seal(b, ssoAAD())
	if err != nil {
		return "", nil, fmt.Errorf("single sign-on: %w", err)
	}
	return u, sealed, nil
}

// SSOFinish completes a sign-in from the provider's callback. The user
// must exist already (an admin made the account; there is no
// self-registration): matched by the provider's subject once linked, and
// the first time by a verified e-mail address. The new session carries
// the second factor when the provider asserts one (amr); otherwise the
// user completes Vigil's own.
func (s *Service) SSOFinish(ctx context.Context, sealed []byte, state, code, ip string) (LoginResult, error) {
	b, err := s.seal.Open(sealed, ssoAAD())
	if err != nil {
		return LoginResult{}, ErrBadCredentials
	}
	var pend pendingSSO
	if err := json.Unmarshal(b, &pend); err != nil {
		return LoginResult{}, ErrBadCredentials
	}
	p, err := s.provider(ctx, pend.Org)
	if err != nil {
		return LoginResult{}, err
	}
	id, err := p.Finish(ctx, pend.Pending, state, code)
	if err != nil {
		_ = s.record(ctx, audit.Entry{Actor: "anonymous", SourceIP: ip, Action: "login.oidc", Outcome: "failed", Severity: "warning",
			Details: map[string]string{"reason": ssoReason(err)}})
		return LoginResult{}, ErrBadCredentials
	}
	// An organisation's provider speaks for its own subjects only: they
	// are kept apart from the install's and from other organisations'.
	subject, prefix := id.Subject, ""
	if pend.Org != "" {
		prefix = "org:" + pend.Org + ":"
		subject = prefix + p.Issuer() + "#" + id.Subject
	}
	u, err := s.st.GetUserByOIDC(ctx, subject)
	if errors.Is(err, store.ErrNotFound) && id.EmailVerified && id.Email != "" {
		if u, err = s.st.GetUserByEmail(ctx, NormEmail(id.Email)); err == nil {
			if u.OIDCSubject != "" && (prefix == "" || !strings.HasPrefix(u.OIDCSubject, prefix)) {
				err = store.ErrNotFound // linked to another identity already
			} else if lerr := s.st.SetOIDCSubject(ctx, u.ID, subject); lerr != nil {
				return LoginResult{}, fmt.Errorf("single sign-on: link account: %w", lerr)
			}
		}
	}
	if err == nil && pend.Org != "" {
		// Only the organisation's own people: not provider staff, not a
		// member of any other organisation.
		if ok, merr := s.onlyMemberOf(ctx, u, pend.Org); merr != nil {
			return LoginResult{}, fmt.Errorf("single sign-on: %w", merr)
		} else if !ok {
			err = store.ErrNotFound
		}
	}
	if err != nil || !u.DisabledAt.IsZero() {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return LoginResult{}, fmt.Errorf("single sign-on: %w", err)
		}
		_ = s.record(ctx, audit.Entry{Actor: "anonymous", SourceIP: ip, Action: "login.oidc", Outcome: "denied", Severity: "warning",
			Details: map[string]string{"reason": "no such account"}})
		return LoginResult{}, ErrBadCredentials
	}
	var mfaAt time.Time
	method := ""
	if id.MFA {
		if only, err := s.webAuthnOnly(ctx, u.ID); err != nil {
			return LoginResult{}, err
		} else if !only {
			mfaAt, method = s.clk.Now(), "oidc"
		}
	}
	tok, err := s.newSession(ctx, u.ID, ip, mfaAt, method)
	if err != nil {
		return LoginResult{}, err
	}
	methods, err := s.methods(ctx, u)
	if err != nil {
		return LoginResult{}, err
	}
	if err := s.record(ctx, audit.Entry{OrgID: pend.Org, Actor: u.ID, SourceIP: ip, Action: "login.oidc", Outcome: "ok", Severity: "info",
		Details: map[string]string{"idp_mfa": fmt.Sprint(id.MFA)}}); err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Token: tok, User: u, Methods: methods, MustEnrol: mfaAt.IsZero() && len(methods) == 0,
		MFADone: !mfaAt.IsZero()}, nil
}

func ssoReason(err error) string {
	switch {
	case errors.Is(err, oidc.ErrState):
		return "state"
	case errors.Is(err, oidc.ErrToken):
		return "token"
	case errors.Is(err, oidc.ErrExchange):
		return "exchange"
	}
	return "other"
}

// onlyMemberOf reports whether u belongs to org and to no other
// organisation, and is not provider staff: an organisation's identity
// provider signs in no one else.
func (s *Service) onlyMemberOf(ctx context.Context, u store.User, org string) (bool, error) {
	if u.Provider {
		return false, nil
	}
	ms, err := s.st.ListMemberships(ctx, u.ID)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.OrgID != org {
			return false, nil
		}
	}
	return len(ms) > 0, nil
}

// OrgSSOInfo is an organisation's identity provider as admins see it: the
// secret itself is never shown again.
type OrgSSOInfo struct {
	Issuer    string    `json:"issuer"`
	ClientID  string    `json:"client_id"`
	HasSecret bool      `json:"client_secret_set"`
	UpdatedAt time.Time `json:"updated_at"`
}

// OrgSSO is org's identity provider; none: ErrSSOOff.
func (s *Service) OrgSSO(ctx context.Context, org string) (OrgSSOInfo, error) {
	o, err := s.st.GetOrgSSO(ctx, org)
	if errors.Is(err, store.ErrNotFound) {
		return OrgSSOInfo{}, ErrSSOOff
	}
	if err != nil {
		return OrgSSOInfo{}, fmt.Errorf("single sign-on of %s: %w", org, err)
	}
	return OrgSSOInfo{Issuer: o.Issuer, ClientID: o.ClientID, HasSecret: len(o.SecretSealed) > 0, UpdatedAt: o.UpdatedAt}, nil
}

// ErrNoBaseURL: single sign-on needs notify.base_url for its callback.
var ErrNoBaseURL = errors.New("auth: single sign-on needs notify.base_url (the callback URL is built from it)")

// SetOrgSSO sets org's own identity provider (the caller checked
// org.settings); the client secret is sealed before it is stored. Audited
// with high severity; the secret never reaches the log.
func (s *Service) SetOrgSSO(ctx context.Context, p *Principal, org, issuer, clientID, secret, ip string) error {
	if s.cfg.SSO == nil {
		return ErrNoBaseURL
	}
	var sealed []byte
	if secret != "" {
		var err error
		if sealed, err = s.seal.Seal([]byte(secret), orgSSOAAD(org)); err != nil {
			return fmt.Errorf("single sign-on of %s: %w", org, err)
		}
	}
	if err := s.record(ctx, audit.Entry{OrgID: org, Actor: p.Actor(), SourceIP: ip, Action: "org.sso.set", ObjectType: "org",
		ObjectID: org, Outcome: "ok", Severity: "high", Details: map[string]string{"issuer": issuer, "client_id": clientID}}); err != nil {
		return err
	}
	if err := s.st.PutOrgSSO(ctx, store.OrgSSO{OrgID: org, Issuer: issuer, ClientID: clientID, SecretSealed: sealed, UpdatedAt: s.clk.Now()}); err != nil {
		return fmt.Errorf("single sign-on of %s: %w", org, err)
	}
	return nil
}

// DeleteOrgSSO turns org's own identity provider off; none: ErrSSOOff.
func (s *Service) DeleteOrgSSO(ctx context.Context, p *Principal, org, ip string) error {
	if err := s.record(ctx, audit.Entry{OrgID: org, Actor: p.Actor(), SourceIP: ip, Action: "org.sso.delete", ObjectType: "org",
		ObjectID: org, Outcome: "ok", Severity: "high"}); err != nil {
		return err
	}
	err := s.st.DeleteOrgSSO(ctx, org)
	if errors.Is(err, store.ErrNotFound) {
		return ErrSSOOff
	}
	if err != nil {
		return fmt.Errorf("single sign-on of %s: %w", org, err)
	}
	return nil
}
