package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth/password"
	"vigil/internal/store"
)

// --- users ------------------------------------------------------------------

// Invitation is a new user and the one-time link with which they set
// their password (shown once to the admin, also mailed when mail works).
type Invitation struct {
	User store.User
	Link string
	// Token is the link's secret, for operators without a base URL.
	Token string
}

// InviteUser creates a user with a role in org. There is no
// self-registration: only an org admin (or provider staff) does this.
func (s *Service) InviteUser(ctx context.Context, p *Principal, org, email, name string, role store.Role, personID, ip string) (Invitation, error) {
	if !ValidRole(role) {
		return Invitation{}, &FieldError{"role", "want admin, supervisor, responder, auditor, worker, carer or provider"}
	}
	if role == store.RoleProvider && (p == nil || !p.Provider) {
		return Invitation{}, &FieldError{"role", "only provider staff assign provider staff"}
	}
	u := store.User{ID: newID("u_"), Email: NormEmail(email), Name: strings.TrimSpace(name), PersonID: personID,
		Provider: role == store.RoleProvider, CreatedAt: s.clk.Now()}
	if !strings.Contains(u.Email, "@") || len(u.Email) > 254 {
		return Invitation{}, &FieldError{"email", "want an e-mail address"}
	}
	if u.Name == "" || len(u.Name) > 200 {
		return Invitation{}, &FieldError{"name", "required, at most 200 characters"}
	}
	if personID != "" {
		per, err := s.st.GetPerson(ctx, personID)
		if err != nil || per.OrgID != org {
			return Invitation{}, &FieldError{"person_id", "no such person in this organisation"}
		}
	}
	if err := s.st.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return Invitation{}, &FieldError{"email", "a user with this e-mail exists"}
		}
		return Invitation{}, fmt.Errorf("invite user: %w", err)
	}
	if err := s.st.PutMembership(ctx, store.Membership{UserID: u.ID, OrgID: org, Role: role, CreatedAt: s.clk.Now()}); err != nil {
		return Invitation{}, fmt.Errorf("invite user: %w", err)
	}
	tok, h, err := randomToken("vgr_", 32)
	if err != nil {
		return Invitation{}, err
	}
	now := s.clk.Now()
	if err := s.st.CreateResetToken(ctx, store.ResetToken{TokenHash: h, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.InviteTTL)}); err != nil {
		return Invitation{}, fmt.Errorf("invite user: %w", err)
	}
	if err := s.record(ctx, audit.Entry{OrgID: org, Actor: p.Actor(), SourceIP: ip, Action: "user.create", ObjectType: "user",
		ObjectID: u.ID, Outcome: "ok", Severity: "high", Details: map[string]string{"role": string(role)}}); err != nil {
		return Invitation{}, err
	}
	inv := Invitation{User: u, Token: tok, Link: s.link("/set-password", tok)}
	if s.cfg.Mailer != nil && inv.Link != "" {
		if err := s.cfg.Mailer.SendLink(ctx, u.Email, "Your Vigil account",
			"An account was made for you on Vigil. Set your password with this link (valid for "+s.cfg.InviteTTL.String()+"):", inv.Link); err != nil {
			s.log.Warn("invitation mail not sent", "user_id", u.ID, "err", err)
		}
	}
	return inv, nil
}

// link builds a link from the configured base URL only (never a request's
// Host); the token goes in the fragment so it reaches no server log.
func (s *Service) link(path, token string) string {
	if s.cfg.BaseURL == "" {
		return ""
	}
	if token == "" {
		return strings.TrimRight(s.cfg.BaseURL, "/") + path
	}
	return strings.TrimRight(s.cfg.BaseURL, "/") + path + "#token=" + token
}

// SetRole changes (or gives) a user's role in org.
func (s *Service) SetRole(ctx context.Context, p *Principal, org, userID string, role store.Role, ip string) error {
	if !ValidRole(role) {
		return &FieldError{"role", "want admin, supervisor, responder, auditor, worker, carer or provider"}
	}
	if role == store.RoleProvider && !p.Provider {
		return &FieldError{"role", "only provider staff assign provider staff"}
	}
	if _, err := s.st.GetUser(ctx, userID); err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	if err := s.keepAnAdmin(ctx, org, userID, role); err != nil {
		return err
	}
	if err := s.st.PutMembership(ctx, store.Membership{UserID: userID, OrgID: org, Role: role, CreatedAt: s.clk.Now()}); err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	// A privilege change ends the user's sessions: they sign in again.
	if _, err := s.st.DeleteUserWebSessions(ctx, userID, nil); err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	return s.record(ctx, audit.Entry{OrgID: org, Actor: p.Actor(), SourceIP: ip, Action: "user.role", ObjectType: "user",
		ObjectID: userID, Outcome: "ok", Severity: "high", Details: map[string]string{"role": string(role)}})
}

func (s *Service) keepAnAdmin(ctx context.Context, org, userID string, newRole store.Role) error {
	if newRole == store.RoleAdmin {
		return nil
	}
	ms, err := s.st.ListMemberships(ctx, userID)
	if err != nil {
		return fmt.Errorf("check admins: %w", err)
	}
	for _, m := range ms {
		if m.OrgID == org && m.Role == store.RoleAdmin {
			n, err := s.st.CountAdmins(ctx, org)
			if err != nil {
				return fmt.Errorf("check admins: %w", err)
			}
			if n <= 1 {
				return ErrLastAdmin
			}
		}
	}
	return nil
}

// RemoveMember takes a user out of org.
func (s *Service) RemoveMember(ctx context.Context, p *Principal, org, userID, ip string) error {
	if err := s.keepAnAdmin(ctx, org, userID, ""); err != nil {
		return err
	}
	if err := s.st.DeleteMembership(ctx, userID, org); err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	if _, err := s.st.DeleteUserWebSessions(ctx, userID, nil); err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	return s.record(ctx, audit.Entry{OrgID: org, Actor: p.Actor(), SourceIP: ip, Action: "user.remove", ObjectType: "user",
		ObjectID: userID, Outcome: "ok", Severity: "high"})
}

// SetDisabled disables (or enables) a user; a disabled user's sessions end
// at once.
func (s *Service) SetDisabled(ctx context.Context, p *Principal, org, userID string, disabled bool, ip string) error {
	at := time.Time{}
	if disabled {
		if err := s.keepAnAdmin(ctx, org, userID, ""); err != nil {
			return err
		}
		at = s.clk.Now()
	}
	if err := s.st.SetUserDisabled(ctx, userID, at); err != nil {
		return fmt.Errorf("disable user: %w", err)
	}
	if disabled {
		if _, err := s.st.DeleteUserWebSessions(ctx, userID, nil); err != nil {
			return fmt.Errorf("disable user: %w", err)
		}
	}
	action := "user.enable"
	if disabled {
		action = "user.disable"
	}
	return s.record(ctx, audit.Entry{OrgID: org, Actor: p.Actor(), SourceIP: ip, Action: action, ObjectType: "user",
		ObjectID: userID, Outcome: "ok", Severity: "high"})
}

// --- passwords --------------------------------------------------------------

// ChangePassword sets a new password after checking the current one; the
// user's other sessions end when endOthers.
func (s *Service) ChangePassword(ctx context.Context, p *Principal, current, next string, endOthers bool, ip string) error {
	if p == nil || !p.MFA {
		return ErrMFARequired
	}
	u, err := s.st.GetUser(ctx, p.UserID)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if wait, ok := s.guard.Check(u.Email, ip, true); !ok {
		return &Throttled{RetryAfter: wait}
	}
	var ok bool
	if err := s.guard.Hash(ctx, func() {
		var verr error
		ok, _, verr = password.Verify(u.PasswordHash, current, s.cfg.Params)
		if verr != nil {
			ok = false
		}
	}); err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if !ok {
		s.guard.Failure(u.Email, ip)
		return &FieldError{"current_password", "wrong password"}
	}
	if err := s.checkPassword(next, u); err != nil {
		return err
	}
	h, err := s.hash(ctx, next)
	if err != nil {
		return err
	}
	s.guard.Success(u.Email, ip)
	if err := s.st.SetPasswordHash(ctx, u.ID, h, s.clk.Now()); err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if endOthers {
		if _, err := s.st.DeleteUserWebSessions(ctx, u.ID, p.SessionHash); err != nil {
			return fmt.Errorf("change password: %w", err)
		}
	}
	return s.record(ctx, audit.Entry{Actor: u.ID, SourceIP: ip, Action: "password.change", ObjectType: "user", ObjectID: u.ID,
		Outcome: "ok", Severity: "high"})
}

// RequestReset mails a reset link when the e-mail belongs to an enabled
// user, and does the same visible work either way.
func (s *Service) RequestReset(ctx context.Context, email, ip string) error {
	acct := NormEmail(email)
	if wait, ok := s.guard.Check("reset:"+acct, ip, false); !ok {
		return &Throttled{RetryAfter: wait}
	}
	s.guard.Failure("reset:"+acct, ip) // every request counts against the pair
	u, err := s.st.GetUserByEmail(ctx, acct)
	if errors.Is(err, store.ErrNotFound) {
		_ = s.record(ctx, audit.Entry{Actor: "anonymous", SourceIP: ip, Action: "password.reset_request", Outcome: "denied",
			Severity: "info", Details: map[string]string{"account": pseudonym(s.cfg.DeviceKey, acct)}})
		return nil
	}
	if err != nil {
		return fmt.Errorf("request reset: %w", err)
	}
	if !u.DisabledAt.IsZero() || s.cfg.Mailer == nil || s.cfg.BaseURL == "" {
		return nil
	}
	tok, h, err := randomToken("vgr_", 32)
	if err != nil {
		return err
	}
	now := s.clk.Now()
	if err := s.st.CreateResetToken(ctx, store.ResetToken{TokenHash: h, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.ResetTTL)}); err != nil {
		return fmt.Errorf("request reset: %w", err)
	}
	if err := s.record(ctx, audit.Entry{Actor: u.ID, SourceIP: ip, Action: "password.reset_request", ObjectType: "user",
		ObjectID: u.ID, Outcome: "ok", Severity: "warning"}); err != nil {
		return err
	}
	// The Mailer queues (see its contract): the answer neither waits on
	// nor reveals the mail server.
	if err := s.cfg.Mailer.SendLink(ctx, u.Email, "Reset your Vigil password",
		"Someone asked to reset the password of your Vigil account. If it was you, use this link within "+
			s.cfg.ResetTTL.String()+"; you will still need your second factor:", s.link("/reset-password", tok)); err != nil {
		s.log.Warn("reset mail not queued", "user_id", u.ID, "err", err)
	}
	return nil
}

// ConfirmReset sets a new password with a reset or invitation token. It
// ends every session of the user and completes no second factor: the user
// signs in afterwards with password and MFA.
func (s *Service) ConfirmReset(ctx context.Context, token, next, ip string) error {
	// Guessing reset tokens is throttled per source (a token is 256
	// bits: the throttle only keeps the log quiet).
	if wait, ok := s.guard.Check("reset-token:"+ip, ip, false); !ok {
		return &Throttled{RetryAfter: wait}
	}
	h := HashToken(token)
	// Check the policy against the token's user before using the token.
	rt, err := s.st.UseResetToken(ctx, h, s.clk.Now())
	if errors.Is(err, store.ErrNotFound) {
		s.guard.Failure("reset-token:"+ip, ip)
		return ErrBadToken
	}
	if err != nil {
		return fmt.Errorf("confirm reset: %w", err)
	}
	u, err := s.st.GetUser(ctx, rt.UserID)
	if err != nil {
		return fmt.Errorf("confirm reset: %w", err)
	}
	if err := s.checkPassword(next, u); err != nil {
		// Give the token back its use: the user retries with a better
		// password.
		_ = s.st.CreateResetToken(ctx, store.ResetToken{TokenHash: slices.Clone(h), UserID: u.ID, CreatedAt: rt.CreatedAt, ExpiresAt: rt.ExpiresAt})
		return err
	}
	s.guard.Success("reset-token:"+ip, ip)
	hash, err := s.hash(ctx, next)
	if err != nil {
		return err
	}
	if err := s.st.SetPasswordHash(ctx, u.ID, hash, s.clk.Now()); err != nil {
		return fmt.Errorf("confirm reset: %w", err)
	}
	if _, err := s.st.DeleteUserWebSessions(ctx, u.ID, nil); err != nil {
		return fmt.Errorf("confirm reset: %w", err)
	}
	return s.record(ctx, audit.Entry{Actor: u.ID, SourceIP: ip, Action: "password.reset", ObjectType: "user", ObjectID: u.ID,
		Outcome: "ok", Severity: "high"})
}

// --- API tokens -------------------------------------------------------------

// NewToken is an API token as created: Secret is shown once.
type NewToken struct {
	store.APIToken
	Secret string
}

// CreateToken makes an API token for org with perms (each one the creator
// holds there), expiring after ttl (at most a year).
func (s *Service) CreateToken(ctx context.Context, p *Principal, org, name string, perms []Permission, ttl time.Duration, ip string) (NewToken, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return NewToken{}, &FieldError{"name", "required, at most 100 characters"}
	}
	if len(perms) == 0 {
		return NewToken{}, &FieldError{"permissions", "name at least one permission"}
	}
	for _, pm := range perms {
		if !ValidPermission(pm) {
			return NewToken{}, &FieldError{"permissions", "unknown permission " + strings.Map(safeRune, string(pm))}
		}
		if !p.Can(org, pm) {
			return NewToken{}, &FieldError{"permissions", "you do not hold " + string(pm)}
		}
	}
	if ttl <= 0 || ttl > 366*24*time.Hour {
		return NewToken{}, &FieldError{"expires_in", "want a duration up to a year"}
	}
	id := newID("")[:16]
	secret, h, err := randomToken("", 32)
	if err != nil {
		return NewToken{}, err
	}
	ps := make([]string, len(perms))
	for i, pm := range perms {
		ps[i] = string(pm)
	}
	now := s.clk.Now()
	t := store.APIToken{ID: id, OrgID: org, Name: name, SecretHash: h, Permissions: ps, CreatedBy: p.Actor(),
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.st.CreateAPIToken(ctx, t); err != nil {
		return NewToken{}, fmt.Errorf("create token: %w", err)
	}
	if err := s.record(ctx, audit.Entry{OrgID: org, Actor: p.Actor(), SourceIP: ip, Action: "token.create", ObjectType: "token",
		ObjectID: id, Outcome: "ok", Severity: "high", Details: map[string]string{"permissions": strings.Join(ps, " ")}}); err != nil {
		return NewToken{}, err
	}
	return NewToken{APIToken: t, Secret: "vgt_" + id + "_" + secret}, nil
}

func safeRune(r rune) rune {
	if r < 0x20 || r == 0x7f || r > 0x7e {
		return '?'
	}
	return r
}

// AuthenticateToken resolves a bearer API token.
func (s *Service) AuthenticateToken(ctx context.Context, bearer string) (*Principal, error) {
	rest, ok := strings.CutPrefix(bearer, "vgt_")
	if !ok {
		return nil, ErrUnauthenticated
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || id == "" || len(id) > 32 || secret == "" {
		return nil, ErrUnauthenticated
	}
	t, err := s.st.GetAPIToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate token: %w", err)
	}
	now := s.clk.Now()
	if subtle.ConstantTimeCompare(t.SecretHash, HashToken(secret)) != 1 || !t.RevokedAt.IsZero() || !now.Before(t.ExpiresAt) {
		return nil, ErrUnauthenticated
	}
	if now.Sub(t.LastUsedAt) > time.Minute {
		_ = s.st.TouchAPIToken(ctx, id, now)
	}
	p := &Principal{TokenID: t.ID, TokenOrg: t.OrgID, MFA: true}
	for _, x := range t.Permissions {
		p.TokenPerms = append(p.TokenPerms, Permission(x))
	}
	return p, nil
}

// RevokeToken revokes an API token of org.
func (s *Service) RevokeToken(ctx context.Context, p *Principal, org, id, ip string) error {
	t, err := s.st.GetAPIToken(ctx, id)
	if err != nil || t.OrgID != org {
		return fmt.Errorf("revoke token: %w", store.ErrNotFound)
	}
	if err := s.st.RevokeAPIToken(ctx, id, s.clk.Now()); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return s.record(ctx, audit.Entry{OrgID: org, Actor: p.Actor(), SourceIP: ip, Action: "token.revoke", ObjectType: "token",
		ObjectID: id, Outcome: "ok", Severity: "high"})
}

// PrincipalOf returns the principal of a user (for integration tests and
// the CLI).
func (s *Service) PrincipalOf(ctx context.Context, userID string) (*Principal, error) {
	u, err := s.st.GetUser(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("principal: %w", err)
	}
	return s.principal(ctx, u)
}

// IssueToken makes an API token for org without a signed-in principal: the
// operator's path (`vigil token create` on the server's own data, the demo,
// tests). by names the operator in the audit log. perms nil gives every
// permission but medical notes.
func (s *Service) IssueToken(ctx context.Context, org, name string, perms []Permission, ttl time.Duration, by string) (NewToken, error) {
	if _, err := s.st.GetOrg(ctx, org); err != nil {
		return NewToken{}, fmt.Errorf("issue token: %w", err)
	}
	if perms == nil {
		perms = RolePermissions(store.RoleProvider)
	}
	op := &Principal{UserID: by, roles: map[string]store.Role{org: store.RoleAdmin}}
	return s.CreateToken(ctx, op, org, name, perms, ttl, "local")
}
