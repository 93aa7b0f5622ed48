// Package auth is who may do what: users and their roles per organisation,
// sign-in with an argon2id password and a second factor (TOTP, WebAuthn or
// a one-time recovery code), browser sessions stored only as hashes, API
// tokens for integrations, password resets and invitations, the one-time
// bootstrap of the first admin, and the permission table (perm.go) that
// gives every role its meaning.
//
// Every security event goes to the audit log through the Auditor the
// caller passes. Nothing here speaks HTTP: internal/web maps requests to
// these calls and errors to statuses. It imports the store's record types,
// internal/audit's Entry and the leaf packages password, guard and mfa; it
// must not import drivers, the bus, gateways or internal/web.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"vigil/internal/audit"
	"vigil/internal/auth/guard"
	"vigil/internal/auth/mfa"
	"vigil/internal/auth/password"
	"vigil/internal/clock"
	"vigil/internal/store"
)

// Errors callers classify.
var (
	// ErrBadCredentials is every failed sign-in, whatever failed, so the
	// answer never tells whether an account exists.
	ErrBadCredentials  = errors.New("auth: wrong e-mail or password")
	ErrBadCode         = errors.New("auth: wrong or used code")
	ErrUnauthenticated = errors.New("auth: not signed in")
	ErrMFARequired     = errors.New("auth: second factor required")
	ErrBootstrapUsed   = errors.New("auth: the bootstrap token was already used or has expired")
	ErrBadToken        = errors.New("auth: invalid or expired token")
	ErrWebAuthnOnly    = errors.New("auth: this organisation requires a passkey or security key")
	ErrNotEnrolled     = errors.New("auth: no such second factor enrolled")
	ErrLastAdmin       = errors.New("auth: an organisation keeps at least one admin")
)

// Throttled says when a refused sign-in may be tried again.
type Throttled struct{ RetryAfter time.Duration }

func (e *Throttled) Error() string { return "auth: too many attempts; try again later" }

// FieldError is bad input naming the field (e.g. a password the policy
// refuses); its message never contains the value.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Store is what auth keeps.
type Store interface {
	store.AccessStore
	store.OrgSSOStore
	GetOrg(ctx context.Context, id string) (store.Org, error)
	GetPerson(ctx context.Context, id string) (store.Person, error)
	GetMeta(ctx context.Context, key string) (string, error)
	PutMetas(ctx context.Context, kvs map[string]string) error
	DeleteMeta(ctx context.Context, key string) error
}

// Sealer encrypts secrets at rest (internal/seal).
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(ciphertext, aad []byte) ([]byte, error)
}

// Auditor records security events; an error means the event is not
// durable.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Mailer sends the password-reset and invitation mails. The link is built
// from the configured base URL only. SendLink must queue and return at
// once: a reset answer must not reveal, by its timing, that a mail went.
type Mailer interface {
	SendLink(ctx context.Context, to, subject, text, link string) error
}

// Config tunes the service; the zero value works.
type Config struct {
	Clock        clock.Clock
	Log          *slog.Logger
	Params       password.Params // argon2id; zero: password.DefaultParams()
	IdleTimeout  time.Duration   // default 15 min (HIPAA automatic logoff)
	MaxLifetime  time.Duration   // default 12 h
	Issuer       string          // TOTP issuer; default "Vigil"
	BaseURL      string          // links in mails; "" sends none
	ResetTTL     time.Duration   // default 1 h
	InviteTTL    time.Duration   // default 72 h
	BootstrapTTL time.Duration   // default 24 h
	// DeviceKey signs the device cookie of browsers that signed in before
	// (exempt from account-wide throttling). Per install, random.
	DeviceKey []byte
	Guard     *guard.Guard // default guard.New with the clock
	// Notice tells an organisation's live console about a security event
	// (a break-glass grant); nil: not told.
	Notice   func(org, name string, data []byte)
	WebAuthn *mfa.WebAuthn // nil: passkeys off
	SSO      *SSO          // nil: no single sign-on
	Mailer   Mailer        // nil: links are only returned to admins
}

// Service is the authentication and account service.
type Service struct {
	st     Store
	seal   Sealer
	audit  Auditor
	cfg    Config
	clk    clock.Clock
	log    *slog.Logger
	guard  *guard.Guard
	policy *password.Policy

	mu       sync.Mutex
	pending  map[string]pendingTOTP      // session hash → TOTP enrolment awaiting its first code
	ceremony map[string]webauthnCeremony // session hash → WebAuthn challenge state
	last     map[string]time.Time        // rate of throttle audit entries and notices
}

type pendingTOTP struct {
	secret []byte
	until  time.Time
}

type webauthnCeremony struct {
	kind    string // "register" or "login"
	session []byte
	until   time.Time
}

// New returns the service.
func New(st Store, seal Sealer, aud Auditor, cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Params == (password.Params{}) {
		cfg.Params = password.DefaultParams()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.IdleTimeout, 15*time.Minute)
	def(&cfg.MaxLifetime, 12*time.Hour)
	def(&cfg.ResetTTL, time.Hour)
	def(&cfg.InviteTTL, 72*time.Hour)
	def(&cfg.BootstrapTTL, 24*time.Hour)
	if cfg.Issuer == "" {
		cfg.Issuer = "Vigil"
	}
	if cfg.Guard == nil {
		cfg.Guard = guard.New(guard.Config{Clock: cfg.Clock})
	}
	return &Service{st: st, seal: seal, audit: aud, cfg: cfg, clk: cfg.Clock, log: cfg.Log, guard: cfg.Guard,
		policy: password.NewPolicy(), pending: map[string]pendingTOTP{}, ceremony: map[string]webauthnCeremony{}}
}

// Config returns the effective configuration (timeouts for cookies).
func (s *Service) Config() Config { return s.cfg }

// Guard returns the sign-in throttle (for metrics).
func (s *Service) Guard() *guard.Guard { return s.guard }

// record writes an audit entry; the error is the caller's to act on.
func (s *Service) record(ctx context.Context, e audit.Entry) error {
	if err := s.audit.Record(ctx, e); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// NormEmail is the form emails are compared in.
func NormEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func randomToken(prefix string, n int) (string, []byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("random token: %w", err)
	}
	t := prefix + base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(t))
	return t, h[:], nil
}

// HashToken is how session ids, reset tokens and bootstrap tokens are
// stored.
func HashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

func newID(prefix string) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return prefix + strings.ToLower(base32NoPad(b))
}

func base32NoPad(b []byte) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var sb strings.Builder
	var acc uint32
	bits := 0
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			sb.WriteByte(alphabet[(acc>>uint(bits))&31])
		}
	}
	if bits > 0 {
		sb.WriteByte(alphabet[(acc<<uint(5-bits))&31])
	}
	return sb.String()
}

// --- bootstrap --------------------------------------------------------------

const (
	metaBootstrapHash    = "bootstrap_token_sha256"
	metaBootstrapCreated = "bootstrap_token_created"
	metaBootstrapUsed    = "bootstrap_token_used"
)

// EnsureBootstrapToken creates, on first start (no user yet, no token yet),
// the one-time token with which the first admin is created, and returns it
// to be shown once ("" when none is due). Only its hash is kept; it
// expires after Config.BootstrapTTL.
func (s *Service) EnsureBootstrapToken(ctx context.Context) (string, error) {
	if _, err := s.st.GetMeta(ctx, metaBootstrapUsed); err == nil {
		return "", nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("read bootstrap state: %w", err)
	}
	users, err := s.st.ListUsers(ctx, "")
	if err != nil {
		return "", fmt.Errorf("read bootstrap state: %w", err)
	}
	if len(users) > 0 {
		return "", nil
	}
	if v, err := s.st.GetMeta(ctx, metaBootstrapCreated); err == nil {
		if at, perr := time.Parse(time.RFC3339Nano, v); perr == nil && s.clk.Now().Before(at.Add(s.cfg.BootstrapTTL)) {
			return "", nil // a live token was printed already
		}
	}
	tok, h, err := randomToken("vgb_", 24)
	if err != nil {
		return "", err
	}
	if err := s.st.PutMetas(ctx, map[string]string{metaBootstrapHash: hex.EncodeToString(h),
		metaBootstrapCreated: s.clk.Now().UTC().Format(time.RFC3339Nano)}); err != nil {
		return "", fmt.Errorf("store bootstrap token: %w", err)
	}
	return tok, nil
}

// Bootstrap creates the first admin with the one-time token: a provider
// user who then creates organisations. The token is void afterwards; a
// reused or expired token gives ErrBootstrapUsed.
func (s *Service) Bootstrap(ctx context.Context, token, email, name, pw, ip string) (store.User, error) {
	fail := func(reason string) (store.User, error) {
		_ = s.record(ctx, audit.Entry{Actor: "bootstrap", SourceIP: ip, Action: "bootstrap", Outcome: "denied", Severity: "high",
			Details: map[string]string{"reason": reason}})
		return store.User{}, ErrBootstrapUsed
	}
	stored, err := s.st.GetMeta(ctx, metaBootstrapHash)
	if errors.Is(err, store.ErrNotFound) {
		return fail("no live token")
	}
	if err != nil {
		return store.User{}, fmt.Errorf("bootstrap: %w", err)
	}
	want, _ := hex.DecodeString(stored)
	if subtle.ConstantTimeCompare(want, HashToken(token)) != 1 {
		return fail("wrong token")
	}
	created, _ := s.st.GetMeta(ctx, metaBootstrapCreated)
	at, perr := time.Parse(time.RFC3339Nano, created)
	if perr != nil || !s.clk.Now().Before(at.Add(s.cfg.BootstrapTTL)) {
		return fail("expired")
	}
	u := store.User{ID: newID("u_"), Email: NormEmail(email), Name: strings.TrimSpace(name), Provider: true}
	if err := s.checkNewUser(u, pw); err != nil {
		return store.User{}, err
	}
	// Exactly one of concurrent bootstrappers deletes the hash.
	if err := s.st.DeleteMeta(ctx, metaBootstrapHash); errors.Is(err, store.ErrNotFound) {
		return fail("used concurrently")
	} else if err != nil {
		return store.User{}, fmt.Errorf("bootstrap: %w", err)
	}
	if err := s.st.PutMetas(ctx, map[string]string{metaBootstrapUsed: s.clk.Now().UTC().Format(time.RFC3339Nano)}); err != nil {
		return store.User{}, fmt.Errorf("bootstrap: %w", err)
	}
	hash, err := s.hash(ctx, pw)
	if err != nil {
		return store.User{}, err
	}
	u.PasswordHash = hash
	u.CreatedAt, u.PasswordChangedAt = s.clk.Now(), s.clk.Now()
	if err := s.st.CreateUser(ctx, u); err != nil {
		return store.User{}, fmt.Errorf("bootstrap: create admin: %w", err)
	}
	if err := s.record(ctx, audit.Entry{Actor: "bootstrap", SourceIP: ip, Action: "user.create", ObjectType: "user", ObjectID: u.ID,
		Outcome: "ok", Severity: "high", Details: map[string]string{"provider": "true", "via": "bootstrap"}}); err != nil {
		return store.User{}, err
	}
	return u, nil
}

func (s *Service) checkNewUser(u store.User, pw string) error {
	if !strings.Contains(u.Email, "@") || len(u.Email) > 254 {
		return &FieldError{"email", "want an e-mail address"}
	}
	if u.Name == "" || len(u.Name) > 200 {
		return &FieldError{"name", "required, at most 200 characters"}
	}
	return s.checkPassword(pw, u)
}

func (s *Service) checkPassword(pw string, u store.User) error {
	local, _, _ := strings.Cut(u.Email, "@")
	if err := s.policy.Check(pw, local, u.Name, "vigil"); err != nil {
		var rej *password.Rejection
		if errors.As(err, &rej) {
			return &FieldError{"password", rej.Reason}
		}
		return &FieldError{"password", "not accepted"}
	}
	return nil
}

func (s *Service) hash(ctx context.Context, pw string) (string, error) {
	var h string
	var herr error
	if err := s.guard.Hash(ctx, func() { h, herr = password.Hash(pw, s.cfg.Params) }); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	if herr != nil {
		return "", fmt.Errorf("hash password: %w", herr)
	}
	return h, nil
}

// --- sign-in ----------------------------------------------------------------

// LoginResult is a password accepted: a new session (Token for the
// cookie) that still needs its second factor.
type LoginResult struct {
	Token     string
	User      store.User
	Methods   []string // second factors the user can use now
	MustEnrol bool     // no second factor yet: enrol one before anything else
	// MFADone: the session has its second factor already (single sign-on
	// with a provider that asserted one).
	MFADone bool
}

// Login checks a password. Unknown e-mail, wrong password and disabled
// account all give ErrBadCredentials after the same work; a throttled
// attempt gives *Throttled before any hashing.
func (s *Service) Login(ctx context.Context, email, pw, ip, deviceCookie string) (LoginResult, error) {
	acct := NormEmail(email)
	trusted := s.validDeviceCookie(deviceCookie, acct)
	if wait, ok := s.guard.Check(acct, ip, trusted); !ok {
		s.throttled(ctx, acct, ip)
		return LoginResult{}, &Throttled{RetryAfter: wait}
	}
	u, uerr := s.st.GetUserByEmail(ctx, acct)
	if uerr != nil && !errors.Is(uerr, store.ErrNotFound) {
		return LoginResult{}, fmt.Errorf("login: %w", uerr)
	}
	var ok, rehash bool
	if err := s.guard.Hash(ctx, func() {
		if uerr == nil && u.PasswordHash != "" {
			var verr error
			ok, rehash, verr = password.Verify(u.PasswordHash, pw, s.cfg.Params)
			if verr != nil {
				ok = false
			}
			return
		}
		password.DummyVerify(pw, s.cfg.Params)
	}); err != nil {
		return LoginResult{}, fmt.Errorf("login: %w", err)
	}
	if !ok || !u.DisabledAt.IsZero() {
		s.guard.Failure(acct, ip)
		actor := "anonymous"
		if uerr == nil {
			actor = u.ID
		}
		_ = s.record(ctx, audit.Entry{Actor: actor, SourceIP: ip, Action: "login", Outcome: "failed", Severity: "warning",
			Details: map[string]string{"account": pseudonym(s.cfg.DeviceKey, acct)}})
		return LoginResult{}, ErrBadCredentials
	}
	s.guard.Success(acct, ip)
	if rehash {
		if h, err := s.hash(ctx, pw); err == nil {
			if err := s.st.SetPasswordHash(ctx, u.ID, h, u.PasswordChangedAt); err != nil {
				s.log.Warn("password rehash not stored", "user_id", u.ID, "err", err)
			}
		}
	}
	tok, err := s.newSession(ctx, u.ID, ip, time.Time{}, "")
	if err != nil {
		return LoginResult{}, err
	}
	methods, err := s.methods(ctx, u)
	if err != nil {
		return LoginResult{}, err
	}
	if err := s.record(ctx, audit.Entry{Actor: u.ID, SourceIP: ip, Action: "login.password", Outcome: "ok", Severity: "info"}); err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Token: tok, User: u, Methods: methods, MustEnrol: len(methods) == 0}, nil
}

// methods lists the second factors u can complete now.
func (s *Service) methods(ctx context.Context, u store.User) ([]string, error) {
	var out []string
	waOnly, err := s.webAuthnOnly(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if u.TOTPSeed != nil && !waOnly {
		out = append(out, "totp")
	}
	if s.cfg.WebAuthn != nil {
		creds, err := s.st.ListWebAuthnCredentials(ctx, u.ID)
		if err != nil {
			return nil, fmt.Errorf("list passkeys: %w", err)
		}
		if len(creds) > 0 {
			out = append(out, "webauthn")
		}
	}
	if len(out) > 0 && !waOnly {
		if n, err := s.st.CountRecoveryCodes(ctx, u.ID); err == nil && n > 0 {
			out = append(out, "recovery")
		}
	}
	return out, nil
}

// webAuthnOnly reports whether any organisation of the user requires a
// passkey.
func (s *Service) webAuthnOnly(ctx context.Context, userID string) (bool, error) {
	ms, err := s.st.ListMemberships(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("list memberships: %w", err)
	}
	for _, m := range ms {
		o, err := s.st.GetOrg(ctx, m.OrgID)
		if err != nil {
			return false, fmt.Errorf("get org: %w", err)
		}
		if o.RequireWebAuthn {
			return true, nil
		}
	}
	return false, nil
}

func (s *Service) newSession(ctx context.Context, userID, ip string, mfaAt time.Time, method string) (string, error) {
	tok, h, err := randomToken("", 32)
	if err != nil {
		return "", err
	}
	now := s.clk.Now()
	if err := s.st.CreateWebSession(ctx, store.WebSession{IDHash: h, UserID: userID, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(s.cfg.MaxLifetime), MFAAt: mfaAt, MFAMethod: method, SourceIP: ip}); err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	return tok, nil
}

// pseudonym names an account in the audit log without its e-mail.
func pseudonym(key []byte, acct string) string {
	m := hmac.New(sha256.New, append([]byte("vigil-account\x00"), key...))
	m.Write([]byte(acct))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// deviceTTL is how long a browser that completed a sign-in stays exempt
// from the account-wide throttle.
const deviceTTL = 90 * 24 * time.Hour

// DeviceCookieFor is the device cookie for a browser that just completed a
// sign-in with its second factor: random per browser, bound to the account
// and to an expiry by an HMAC under the install's key.
func (s *Service) DeviceCookieFor(p *Principal) string {
	if p == nil || p.Email == "" || len(s.cfg.DeviceKey) == 0 {
		return ""
	}
	b := make([]byte, 16+8)
	_, _ = rand.Read(b[:16])
	binary.BigEndian.PutUint64(b[16:], uint64(s.clk.Now().Add(deviceTTL).Unix()))
	return base64.RawURLEncoding.EncodeToString(append(b, s.deviceMAC(p.Email, b)...))
}

func (s *Service) deviceMAC(acct string, body []byte) []byte {
	m := hmac.New(sha256.New, s.cfg.DeviceKey)
	m.Write([]byte("device\x00" + acct + "\x00"))
	m.Write(body)
	return m.Sum(nil)
}

func (s *Service) validDeviceCookie(c, acct string) bool {
	if c == "" || len(s.cfg.DeviceKey) == 0 || len(c) > 200 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(raw) != 24+sha256.Size {
		return false
	}
	body, mac := raw[:24], raw[24:]
	if !hmac.Equal(mac, s.deviceMAC(acct, body)) {
		return false
	}
	return s.clk.Now().Unix() < int64(binary.BigEndian.Uint64(body[16:]))
}

// Authenticate resolves a session cookie value into its principal. An
// unknown, idle or expired session gives ErrUnauthenticated (and is
// deleted); a session without its second factor yet gives a principal
// with MFA false.
func (s *Service) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, ErrUnauthenticated
	}
	h := HashToken(token)
	ws, err := s.st.GetWebSession(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	now := s.clk.Now()
	if !now.Before(ws.ExpiresAt) || !now.Before(ws.LastSeenAt.Add(s.cfg.IdleTimeout)) {
		_ = s.st.DeleteWebSession(ctx, h)
		return nil, ErrUnauthenticated
	}
	u, err := s.st.GetUser(ctx, ws.UserID)
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if !u.DisabledAt.IsZero() {
		_, _ = s.st.DeleteUserWebSessions(ctx, u.ID, nil)
		return nil, ErrUnauthenticated
	}
	if now.Sub(ws.LastSeenAt) >= 5*time.Second {
		if err := s.st.TouchWebSession(ctx, h, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("authenticate: %w", err)
		}
	}
	p, err := s.principal(ctx, u)
	if err != nil {
		return nil, err
	}
	p.SessionHash = h
	p.MFA = !ws.MFAAt.IsZero()
	p.MFAMethod = ws.MFAMethod
	return p, nil
}

// Principal builds a user's principal from their memberships.
func (s *Service) principal(ctx context.Context, u store.User) (*Principal, error) {
	ms, err := s.st.ListMemberships(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("memberships: %w", err)
	}
	var carer []string
	for _, m := range ms {
		if m.Role == store.RoleCarer {
			if carer, err = s.st.ListCarerPeople(ctx, u.ID); err != nil {
				return nil, fmt.Errorf("carer links: %w", err)
			}
			break
		}
	}
	p := NewPrincipal(u, ms, carer)
	gs, err := s.st.ListBreakGlass(ctx, u.ID, s.clk.Now())
	if err != nil {
		return nil, fmt.Errorf("break-glass grants: %w", err)
	}
	if len(gs) > 0 {
		p.glass = make(map[string]string, len(gs))
		for _, g := range gs {
			p.glass[g.PersonID] = g.OrgID
		}
	}
	return p, nil
}

// Logout ends one session.
func (s *Service) Logout(ctx context.Context, p *Principal, ip string) error {
	if p == nil || p.SessionHash == nil {
		return ErrUnauthenticated
	}
	if err := s.st.DeleteWebSession(ctx, p.SessionHash); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("logout: %w", err)
	}
	return s.record(ctx, audit.Entry{Actor: p.Actor(), SourceIP: ip, Action: "logout", Outcome: "ok", Severity: "info"})
}

// LogoutEverywhere ends every session of the user, this one included.
func (s *Service) LogoutEverywhere(ctx context.Context, p *Principal, ip string) (int, error) {
	n, err := s.st.DeleteUserWebSessions(ctx, p.UserID, nil)
	if err != nil {
		return 0, fmt.Errorf("sign out everywhere: %w", err)
	}
	return n, s.record(ctx, audit.Entry{Actor: p.Actor(), SourceIP: ip, Action: "logout.everywhere", Outcome: "ok", Severity: "info",
		Details: map[string]string{"sessions": fmt.Sprint(n)}})
}

// upgrade replaces a session by a new one carrying the completed second
// factor (a new id on every privilege change: no fixation).
func (s *Service) upgrade(ctx context.Context, p *Principal, ip, method string) (string, error) {
	old, err := s.st.GetWebSession(ctx, p.SessionHash)
	if err != nil {
		return "", fmt.Errorf("upgrade session: %w", err)
	}
	tok, h, err := randomToken("", 32)
	if err != nil {
		return "", err
	}
	now := s.clk.Now()
	if err := s.st.CreateWebSession(ctx, store.WebSession{IDHash: h, UserID: old.UserID, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: old.ExpiresAt, MFAAt: now, MFAMethod: method, SourceIP: ip}); err != nil {
		return "", fmt.Errorf("upgrade session: %w", err)
	}
	if err := s.st.DeleteWebSession(ctx, p.SessionHash); err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("upgrade session: %w", err)
	}
	return tok, nil
}
