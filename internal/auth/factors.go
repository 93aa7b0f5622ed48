package auth

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth/mfa"
	"vigil/internal/store"
)

// ceremonyTTL bounds a pending TOTP enrolment or WebAuthn challenge. They
// are kept in this process's memory: a restart (or another instance)
// simply asks the user to start over.
const ceremonyTTL = 5 * time.Minute

func totpAAD(userID string) []byte { return []byte("totp:" + userID) }

// mfaKey throttles second-factor guesses per user, separate from the
// password's account key.
func mfaKey(userID string) string { return "mfa:" + userID }

// VerifyTOTP completes sign-in with a TOTP code and returns the new
// session's token (the old id is void). Each code works once.
func (s *Service) VerifyTOTP(ctx context.Context, p *Principal, code, ip string) (string, error) {
	if p == nil || p.SessionHash == nil {
		return "", ErrUnauthenticated
	}
	if wait, ok := s.guard.Check(mfaKey(p.UserID), ip, false); !ok {
		return "", &Throttled{RetryAfter: wait}
	}
	u, err := s.st.GetUser(ctx, p.UserID)
	if err != nil {
		return "", fmt.Errorf("verify totp: %w", err)
	}
	if u.TOTPSeed == nil {
		return "", ErrNotEnrolled
	}
	if only, err := s.webAuthnOnly(ctx, u.ID); err != nil {
		return "", err
	} else if only {
		return "", ErrWebAuthnOnly
	}
	secret, err := s.seal.Open(u.TOTPSeed, totpAAD(u.ID))
	if err != nil {
		return "", fmt.Errorf("verify totp: open seed: %w", err)
	}
	step, err := mfa.VerifyTOTP(secret, code, s.clk.Now(), u.TOTPLastStep)
	if err == nil {
		err = s.st.UseTOTPStep(ctx, u.ID, step)
		if errors.Is(err, store.ErrConflict) {
			err = mfa.ErrReplay
		}
	}
	if err != nil {
		if !errors.Is(err, mfa.ErrReplay) && !errors.Is(err, mfa.ErrInvalidCode) {
			return "", fmt.Errorf("verify totp: %w", err)
		}
		s.guard.Failure(mfaKey(u.ID), ip)
		_ = s.record(ctx, audit.Entry{Actor: u.ID, SourceIP: ip, Action: "login.totp", Outcome: "failed", Severity: "warning",
			Details: map[string]string{"reason": reasonOf(err)}})
		return "", ErrBadCode
	}
	s.guard.Success(mfaKey(u.ID), ip)
	return s.completeMFA(ctx, p, ip, "totp")
}

func reasonOf(err error) string {
	if errors.Is(err, mfa.ErrReplay) {
		return "replayed"
	}
	return "wrong"
}

func (s *Service) completeMFA(ctx context.Context, p *Principal, ip, method string) (string, error) {
	tok, err := s.upgrade(ctx, p, ip, method)
	if err != nil {
		return "", err
	}
	sev := "info"
	if method == "recovery" {
		sev = "high"
	}
	if err := s.record(ctx, audit.Entry{Actor: p.UserID, SourceIP: ip, Action: "login." + method, Outcome: "ok", Severity: sev}); err != nil {
		return "", err
	}
	return tok, nil
}

// UseRecoveryCode completes sign-in with a one-time recovery code.
func (s *Service) UseRecoveryCode(ctx context.Context, p *Principal, code, ip string) (string, error) {
	if p == nil || p.SessionHash == nil {
		return "", ErrUnauthenticated
	}
	if wait, ok := s.guard.Check(mfaKey(p.UserID), ip, false); !ok {
		return "", &Throttled{RetryAfter: wait}
	}
	if only, err := s.webAuthnOnly(ctx, p.UserID); err != nil {
		return "", err
	} else if only {
		return "", ErrWebAuthnOnly
	}
	err := s.st.UseRecoveryCode(ctx, p.UserID, mfa.HashRecoveryCode(code), s.clk.Now())
	if errors.Is(err, store.ErrNotFound) {
		s.guard.Failure(mfaKey(p.UserID), ip)
		_ = s.record(ctx, audit.Entry{Actor: p.UserID, SourceIP: ip, Action: "login.recovery", Outcome: "failed", Severity: "warning"})
		return "", ErrBadCode
	}
	if err != nil {
		return "", fmt.Errorf("recovery code: %w", err)
	}
	s.guard.Success(mfaKey(p.UserID), ip)
	return s.completeMFA(ctx, p, ip, "recovery")
}

// TOTPEnrolment is what a user scans: the otpauth URI and its QR code.
type TOTPEnrolment struct {
	URI string
	PNG []byte
}

// BeginTOTP starts enrolling a TOTP authenticator. A user with no second
// factor may do it on a password-only session; replacing a factor needs a
// completed one.
func (s *Service) BeginTOTP(ctx context.Context, p *Principal) (TOTPEnrolment, error) {
	if err := s.mayEnrol(ctx, p); err != nil {
		return TOTPEnrolment{}, err
	}
	e, err := mfa.NewTOTP(s.cfg.Issuer, p.Email)
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("begin totp: %w", err)
	}
	s.mu.Lock()
	s.gcLocked()
	s.pending[hex.EncodeToString(p.SessionHash)] = pendingTOTP{secret: e.Secret, until: s.clk.Now().Add(ceremonyTTL)}
	s.mu.Unlock()
	return TOTPEnrolment{URI: e.URI, PNG: e.PNG}, nil
}

// mayEnrol allows enrolment on a session with a completed second factor,
// or on a password-only session of a user who has none yet.
func (s *Service) mayEnrol(ctx context.Context, p *Principal) error {
	if p == nil || p.SessionHash == nil {
		return ErrUnauthenticated
	}
	if p.MFA {
		return nil
	}
	u, err := s.st.GetUser(ctx, p.UserID)
	if err != nil {
		return fmt.Errorf("enrol: %w", err)
	}
	ms, err := s.methods(ctx, u)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		return ErrMFARequired
	}
	return nil
}

// ConfirmTOTP finishes enrolment with the first code: the seed is stored
// sealed, ten recovery codes are made (returned once, stored hashed), the
// session is upgraded and every other session of the user ends.
func (s *Service) ConfirmTOTP(ctx context.Context, p *Principal, code, ip string) (token string, recovery []string, err error) {
	if err := s.mayEnrol(ctx, p); err != nil {
		return "", nil, err
	}
	key := hex.EncodeToString(p.SessionHash)
	s.mu.Lock()
	pend, ok := s.pending[key]
	s.mu.Unlock()
	if !ok || !s.clk.Now().Before(pend.until) {
		return "", nil, ErrNotEnrolled
	}
	if wait, ok := s.guard.Check(mfaKey(p.UserID), ip, false); !ok {
		return "", nil, &Throttled{RetryAfter: wait}
	}
	step, err := mfa.VerifyTOTP(pend.secret, code, s.clk.Now(), -1)
	if err != nil {
		s.guard.Failure(mfaKey(p.UserID), ip)
		return "", nil, ErrBadCode
	}
	sealed, err := s.seal.Seal(pend.secret, totpAAD(p.UserID))
	if err != nil {
		return "", nil, fmt.Errorf("confirm totp: %w", err)
	}
	if err := s.st.SetTOTP(ctx, p.UserID, sealed, step); err != nil {
		return "", nil, fmt.Errorf("confirm totp: %w", err)
	}
	s.mu.Lock()
	delete(s.pending, key)
	s.mu.Unlock()
	codes, err := s.newRecoveryCodes(ctx, p.UserID)
	if err != nil {
		return "", nil, err
	}
	if err := s.record(ctx, audit.Entry{Actor: p.UserID, SourceIP: ip, Action: "mfa.enrol", ObjectType: "user", ObjectID: p.UserID,
		Outcome: "ok", Severity: "high", Details: map[string]string{"method": "totp"}}); err != nil {
		return "", nil, err
	}
	tok, err := s.upgrade(ctx, p, ip, "totp")
	if err != nil {
		return "", nil, err
	}
	if _, err := s.st.DeleteUserWebSessions(ctx, p.UserID, HashToken(tok)); err != nil {
		return "", nil, fmt.Errorf("confirm totp: end other sessions: %w", err)
	}
	return tok, codes, nil
}

func (s *Service) newRecoveryCodes(ctx context.Context, userID string) ([]string, error) {
	codes, hashes, err := mfa.NewRecoveryCodes(10)
	if err != nil {
		return nil, fmt.Errorf("recovery codes: %w", err)
	}
	if err := s.st.ReplaceRecoveryCodes(ctx, userID, hashes); err != nil {
		return nil, fmt.Errorf("recovery codes: %w", err)
	}
	return codes, nil
}

// NewRecoveryCodes replaces a user's recovery codes (needs a completed
// second factor).
func (s *Service) NewRecoveryCodes(ctx context.Context, p *Principal, ip string) ([]string, error) {
	if p == nil || !p.MFA {
		return nil, ErrMFARequired
	}
	codes, err := s.newRecoveryCodes(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	return codes, s.record(ctx, audit.Entry{Actor: p.UserID, SourceIP: ip, Action: "mfa.recovery_codes", ObjectType: "user",
		ObjectID: p.UserID, Outcome: "ok", Severity: "high"})
}

func (s *Service) gcLocked() {
	now := s.clk.Now()
	for k, v := range s.pending {
		if !now.Before(v.until) {
			delete(s.pending, k)
		}
	}
	for k, v := range s.ceremony {
		if !now.Before(v.until) {
			delete(s.ceremony, k)
		}
	}
}

// --- WebAuthn ---------------------------------------------------------------

func (s *Service) webauthnUser(ctx context.Context, u store.User) (mfa.User, error) {
	recs, err := s.st.ListWebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return mfa.User{}, fmt.Errorf("list passkeys: %w", err)
	}
	wu := mfa.User{ID: []byte(u.ID), Name: u.Email, DisplayName: u.Name}
	for _, r := range recs {
		c, err := mfa.UnmarshalCredential(r.Data)
		if err != nil {
			return mfa.User{}, fmt.Errorf("read passkey: %w", err)
		}
		wu.Credentials = append(wu.Credentials, c)
	}
	return wu, nil
}

func (s *Service) putCeremony(p *Principal, kind string, session []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gcLocked()
	s.ceremony[hex.EncodeToString(p.SessionHash)] = webauthnCeremony{kind: kind, session: session, until: s.clk.Now().Add(ceremonyTTL)}
}

func (s *Service) takeCeremony(p *Principal, kind string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := hex.EncodeToString(p.SessionHash)
	c, ok := s.ceremony[k]
	delete(s.ceremony, k)
	if !ok || c.kind != kind || !s.clk.Now().Before(c.until) {
		return nil, false
	}
	return c.session, true
}

// BeginWebAuthnRegistration returns the options for
// navigator.credentials.create.
func (s *Service) BeginWebAuthnRegistration(ctx context.Context, p *Principal) ([]byte, error) {
	if s.cfg.WebAuthn == nil {
		return nil, ErrNotEnrolled
	}
	if err := s.mayEnrol(ctx, p); err != nil {
		return nil, err
	}
	u, err := s.st.GetUser(ctx, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	wu, err := s.webauthnUser(ctx, u)
	if err != nil {
		return nil, err
	}
	opts, sess, err := s.cfg.WebAuthn.BeginRegistration(wu)
	if err != nil {
		return nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	s.putCeremony(p, "register", sess)
	return opts, nil
}

// FinishWebAuthnRegistration stores the new credential, upgrades the
// session and ends the user's other sessions.
func (s *Service) FinishWebAuthnRegistration(ctx context.Context, p *Principal, name string, response []byte, ip string) (string, error) {
	if s.cfg.WebAuthn == nil {
		return "", ErrNotEnrolled
	}
	if err := s.mayEnrol(ctx, p); err != nil {
		return "", err
	}
	sess, ok := s.takeCeremony(p, "register")
	if !ok {
		return "", ErrBadCode
	}
	u, err := s.st.GetUser(ctx, p.UserID)
	if err != nil {
		return "", fmt.Errorf("finish passkey registration: %w", err)
	}
	wu, err := s.webauthnUser(ctx, u)
	if err != nil {
		return "", err
	}
	cred, err := s.cfg.WebAuthn.FinishRegistration(wu, sess, response)
	if err != nil {
		_ = s.record(ctx, audit.Entry{Actor: u.ID, SourceIP: ip, Action: "mfa.enrol", Outcome: "failed", Severity: "warning",
			Details: map[string]string{"method": "webauthn"}})
		return "", ErrBadCode
	}
	data, err := mfa.MarshalCredential(cred)
	if err != nil {
		return "", fmt.Errorf("finish passkey registration: %w", err)
	}
	if len(name) > 100 {
		name = name[:100]
	}
	if err := s.st.PutWebAuthnCredential(ctx, store.WebAuthnCredential{ID: cred.ID, UserID: u.ID, Name: name, Data: data,
		CreatedAt: s.clk.Now()}); err != nil {
		return "", fmt.Errorf("finish passkey registration: %w", err)
	}
	if err := s.record(ctx, audit.Entry{Actor: u.ID, SourceIP: ip, Action: "mfa.enrol", ObjectType: "user", ObjectID: u.ID,
		Outcome: "ok", Severity: "high", Details: map[string]string{"method": "webauthn"}}); err != nil {
		return "", err
	}
	tok, err := s.upgrade(ctx, p, ip, "webauthn")
	if err != nil {
		return "", err
	}
	if _, err := s.st.DeleteUserWebSessions(ctx, u.ID, HashToken(tok)); err != nil {
		return "", fmt.Errorf("finish passkey registration: %w", err)
	}
	if n, err := s.st.CountRecoveryCodes(ctx, u.ID); err == nil && n == 0 {
		_, _ = s.newRecoveryCodes(ctx, u.ID) // shown later through NewRecoveryCodes
	}
	return tok, nil
}

// BeginWebAuthnLogin returns the options for navigator.credentials.get.
func (s *Service) BeginWebAuthnLogin(ctx context.Context, p *Principal) ([]byte, error) {
	if s.cfg.WebAuthn == nil || p == nil || p.SessionHash == nil {
		return nil, ErrUnauthenticated
	}
	u, err := s.st.GetUser(ctx, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("begin passkey login: %w", err)
	}
	wu, err := s.webauthnUser(ctx, u)
	if err != nil {
		return nil, err
	}
	if len(wu.Credentials) == 0 {
		return nil, ErrNotEnrolled
	}
	opts, sess, err := s.cfg.WebAuthn.BeginLogin(wu)
	if err != nil {
		return nil, fmt.Errorf("begin passkey login: %w", err)
	}
	s.putCeremony(p, "login", sess)
	return opts, nil
}

// FinishWebAuthnLogin checks the assertion and upgrades the session.
func (s *Service) FinishWebAuthnLogin(ctx context.Context, p *Principal, response []byte, ip string) (string, error) {
	if s.cfg.WebAuthn == nil || p == nil || p.SessionHash == nil {
		return "", ErrUnauthenticated
	}
	if wait, ok := s.guard.Check(mfaKey(p.UserID), ip, false); !ok {
		return "", &Throttled{RetryAfter: wait}
	}
	sess, ok := s.takeCeremony(p, "login")
	if !ok {
		return "", ErrBadCode
	}
	u, err := s.st.GetUser(ctx, p.UserID)
	if err != nil {
		return "", fmt.Errorf("finish passkey login: %w", err)
	}
	wu, err := s.webauthnUser(ctx, u)
	if err != nil {
		return "", err
	}
	cred, err := s.cfg.WebAuthn.FinishLogin(wu, sess, response)
	if err != nil {
		s.guard.Failure(mfaKey(u.ID), ip)
		_ = s.record(ctx, audit.Entry{Actor: u.ID, SourceIP: ip, Action: "login.webauthn", Outcome: "failed", Severity: "warning"})
		return "", ErrBadCode
	}
	s.guard.Success(mfaKey(u.ID), ip)
	data, err := mfa.MarshalCredential(cred)
	if err != nil {
		return "", fmt.Errorf("finish passkey login: %w", err)
	}
	recs, err := s.st.ListWebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return "", fmt.Errorf("finish passkey login: %w", err)
	}
	for _, r := range recs {
		if string(r.ID) == string(cred.ID) {
			r.Data, r.LastUsedAt = data, s.clk.Now()
			if err := s.st.PutWebAuthnCredential(ctx, r); err != nil {
				return "", fmt.Errorf("finish passkey login: %w", err)
			}
		}
	}
	return s.completeMFA(ctx, p, ip, "webauthn")
}
