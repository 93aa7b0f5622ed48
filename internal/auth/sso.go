package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth/oidc"
	"vigil/internal/store"
)

// SSO is single sign-on through an OpenID Connect provider, started
// lazily: an unreachable provider at start-up costs sign-in through it,
// never the server.
type SSO struct {
	cfg oidc.Config
	mu  sync.Mutex
	p   *oidc.Provider
}

// NewSSO returns single sign-on with cfg (discovery happens at first use).
func NewSSO(cfg oidc.Config) *SSO { return &SSO{cfg: cfg} }

// ErrSSOOff: single sign-on is not configured.
var ErrSSOOff = errors.New("auth: single sign-on is not configured")

func (s *Service) provider(ctx context.Context) (*oidc.Provider, error) {
	if s.cfg.SSO == nil {
		return nil, ErrSSOOff
	}
	s.cfg.SSO.mu.Lock()
	defer s.cfg.SSO.mu.Unlock()
	if s.cfg.SSO.p == nil {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		p, err := oidc.New(cctx, s.cfg.SSO.cfg)
		if err != nil {
			return nil, fmt.Errorf("single sign-on: %w", err)
		}
		s.cfg.SSO.p = p
	}
	return s.cfg.SSO.p, nil
}

func ssoAAD() []byte { return []byte("oidc-pending") }

// SSOBegin starts a sign-in at the identity provider: the URL to send the
// browser to, and the pending state sealed for a short-lived cookie.
func (s *Service) SSOBegin(ctx context.Context) (authURL string, sealed []byte, err error) {
	p, err := s.provider(ctx)
	if err != nil {
		return "", nil, err
	}
	u, pending, err := p.Begin()
	if err != nil {
		return "", nil, fmt.Errorf("single sign-on: %w", err)
	}
	sealed, err = s.seal.Seal(pending, ssoAAD())
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
	p, err := s.provider(ctx)
	if err != nil {
		return LoginResult{}, err
	}
	pending, err := s.seal.Open(sealed, ssoAAD())
	if err != nil {
		return LoginResult{}, ErrBadCredentials
	}
	id, err := p.Finish(ctx, pending, state, code)
	if err != nil {
		_ = s.record(ctx, audit.Entry{Actor: "anonymous", SourceIP: ip, Action: "login.oidc", Outcome: "failed", Severity: "warning",
			Details: map[string]string{"reason": ssoReason(err)}})
		return LoginResult{}, ErrBadCredentials
	}
	u, err := s.st.GetUserByOIDC(ctx, id.Subject)
	if errors.Is(err, store.ErrNotFound) && id.EmailVerified && id.Email != "" {
		if u, err = s.st.GetUserByEmail(ctx, NormEmail(id.Email)); err == nil {
			if u.OIDCSubject != "" {
				err = store.ErrNotFound // linked to another identity already
			} else if lerr := s.st.SetOIDCSubject(ctx, u.ID, id.Subject); lerr != nil {
				return LoginResult{}, fmt.Errorf("single sign-on: link account: %w", lerr)
			}
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
	if err := s.record(ctx, audit.Entry{Actor: u.ID, SourceIP: ip, Action: "login.oidc", Outcome: "ok", Severity: "info",
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
