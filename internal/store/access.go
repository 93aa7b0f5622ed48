package store

import (
	"context"
	"time"
)

// Role is what a user may do inside one organisation; internal/auth holds
// the permission table that gives each role its meaning.
type Role string

// The roles. RoleProvider is managed-service provider staff assigned to an
// organisation.
const (
	RoleAdmin      Role = "admin"
	RoleSupervisor Role = "supervisor"
	RoleResponder  Role = "responder"
	RoleAuditor    Role = "auditor"
	RoleWorker     Role = "worker"
	RoleCarer      Role = "carer"
	RoleProvider   Role = "provider"
)

// User is someone who signs in: organisation staff, provider staff, a
// worker using the app, a carer. Email is unique and stored lower-cased.
type User struct {
	ID           string
	Email        string
	Name         string
	PasswordHash string // PHC argon2id string; "" for SSO-only users
	Provider     bool   // managed-service provider staff
	PersonID     string // the worker or resident this user is; "" if none
	// TOTPSeed is the sealed TOTP seed (nil: not enrolled); TOTPLastStep
	// the highest RFC 6238 time step accepted, so a code is used once.
	TOTPSeed          []byte
	TOTPLastStep      int64
	OIDCSubject       string // issuer + " " + subject of a linked IdP account; "" if none
	CreatedAt         time.Time
	PasswordChangedAt time.Time
	DisabledAt        time.Time // zero while enabled
}

// Membership gives a user a role in an organisation (at most one role per
// organisation).
type Membership struct {
	UserID    string
	OrgID     string
	Role      Role
	CreatedAt time.Time
}

// WebSession is a signed-in browser. IDHash is SHA-256 of the cookie value;
// the value itself is never stored.
type WebSession struct {
	IDHash     []byte
	UserID     string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // absolute lifetime
	MFAAt      time.Time // zero: only the password so far
	MFAMethod  string    // "totp", "webauthn", "recovery", "oidc"
	SourceIP   string
}

// WebAuthnCredential is one registered passkey or security key. Data is the
// credential as JSON (internal/auth reads it); ID is the credential id.
type WebAuthnCredential struct {
	ID         []byte
	UserID     string
	Name       string
	Data       string
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// APIToken is an integration's credential, scoped to one organisation and a
// permission set. ID is the public part of the token; SecretHash is SHA-256
// of the secret part, which is shown once and never stored.
type APIToken struct {
	ID          string
	OrgID       string
	Name        string
	SecretHash  []byte
	Permissions []string
	CreatedBy   string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	RevokedAt   time.Time // zero while valid
	LastUsedAt  time.Time
}

// ResetToken is a pending password reset, stored as SHA-256 of the token.
type ResetToken struct {
	TokenHash []byte
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
}

// Contact is a person's emergency contact or carer to call. Personal data.
type Contact struct {
	ID        string
	OrgID     string
	PersonID  string
	Name      string
	Relation  string
	Phone     string
	Email     string
	Priority  int // lower first
	CreatedAt time.Time
}

// Team is a group of users inside an organisation.
type Team struct {
	ID        string
	OrgID     string
	Name      string
	CreatedAt time.Time
	Members   []string // user ids, sorted
}

// BreakGlass is an emergency grant: UserID may read PersonID's details
// until ExpiresAt, for the Reason given (free text: personal data).
type BreakGlass struct {
	ID        string
	OrgID     string
	UserID    string
	PersonID  string
	Reason    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AccessStore keeps users, their roles and credentials. Unknown ids give
// ErrNotFound; duplicates (an email, a team name in its organisation, an
// id) give ErrConflict.
type AccessStore interface {
	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByEmail(ctx context.Context, email string) (User, error) // email compared lower-cased
	GetUserByOIDC(ctx context.Context, subject string) (User, error)
	// ListUsers lists the users with a membership in orgID, or every user
	// when orgID is "", by email.
	ListUsers(ctx context.Context, orgID string) ([]User, error)
	SetPasswordHash(ctx context.Context, userID, hash string, at time.Time) error
	SetUserName(ctx context.Context, userID, name string) error
	SetUserPerson(ctx context.Context, userID, personID string) error // "" unlinks
	SetOIDCSubject(ctx context.Context, userID, subject string) error
	// SetTOTP stores a sealed seed (nil removes it) and resets the last
	// accepted step to lastStep.
	SetTOTP(ctx context.Context, userID string, sealedSeed []byte, lastStep int64) error
	// UseTOTPStep records that the code of step was accepted, atomically:
	// when the stored last step is already >= step it changes nothing and
	// returns ErrConflict (a replayed code).
	UseTOTPStep(ctx context.Context, userID string, step int64) error
	SetUserDisabled(ctx context.Context, userID string, at time.Time) error // zero at enables

	// PutMembership creates or changes a user's role in an organisation.
	PutMembership(ctx context.Context, m Membership) error
	DeleteMembership(ctx context.Context, userID, orgID string) error
	ListMemberships(ctx context.Context, userID string) ([]Membership, error) // by org id
	CountAdmins(ctx context.Context, orgID string) (int, error)               // enabled users with role admin

	LinkCarer(ctx context.Context, userID, personID string) error
	UnlinkCarer(ctx context.Context, userID, personID string) error
	ListCarerPeople(ctx context.Context, userID string) ([]string, error) // person ids, sorted

	CreateTeam(ctx context.Context, t Team) error // Members ignored
	GetTeam(ctx context.Context, id string) (Team, error)
	ListTeams(ctx context.Context, orgID string) ([]Team, error) // by name, with members
	AddTeamMember(ctx context.Context, teamID, userID string) error
	RemoveTeamMember(ctx context.Context, teamID, userID string) error
	DeleteTeam(ctx context.Context, id string) error

	PutContact(ctx context.Context, c Contact) error // create or replace by ID
	GetContact(ctx context.Context, id string) (Contact, error)
	ListContacts(ctx context.Context, personID string) ([]Contact, error) // by priority, then name
	DeleteContact(ctx context.Context, id string) error

	// SetPersonNotes sets a person's medical notes (health context shown
	// to responders; never to carers).
	SetPersonNotes(ctx context.Context, personID, notes string) error
	GetPersonNotes(ctx context.Context, personID string) (string, error)
	SetOrgRequireWebAuthn(ctx context.Context, orgID string, on bool) error

	CreateWebSession(ctx context.Context, s WebSession) error
	GetWebSession(ctx context.Context, idHash []byte) (WebSession, error)
	TouchWebSession(ctx context.Context, idHash []byte, at time.Time) error
	// SetWebSessionMFA records a completed second factor.
	SetWebSessionMFA(ctx context.Context, idHash []byte, at time.Time, method string) error
	DeleteWebSession(ctx context.Context, idHash []byte) error
	// DeleteUserWebSessions ends every session of a user except keep (nil:
	// all) and says how many ended.
	DeleteUserWebSessions(ctx context.Context, userID string, keep []byte) (int, error)
	// DeleteExpiredWebSessions removes sessions whose absolute lifetime
	// ended before at, or idle since before idleBefore.
	DeleteExpiredWebSessions(ctx context.Context, at, idleBefore time.Time) (int, error)

	// ReplaceRecoveryCodes swaps a user's recovery codes for new hashes.
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte) error
	// UseRecoveryCode marks an unused code used, atomically; an unknown or
	// used code gives ErrNotFound.
	UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) error
	CountRecoveryCodes(ctx context.Context, userID string) (int, error) // unused ones

	PutWebAuthnCredential(ctx context.Context, c WebAuthnCredential) error // create or replace by ID
	ListWebAuthnCredentials(ctx context.Context, userID string) ([]WebAuthnCredential, error)
	DeleteWebAuthnCredential(ctx context.Context, userID string, id []byte) error

	CreateAPIToken(ctx context.Context, t APIToken) error
	GetAPIToken(ctx context.Context, id string) (APIToken, error)
	ListAPITokens(ctx context.Context, orgID string) ([]APIToken, error) // newest first
	RevokeAPIToken(ctx context.Context, id string, at time.Time) error
	TouchAPIToken(ctx context.Context, id string, at time.Time) error

	CreateBreakGlass(ctx context.Context, g BreakGlass) error
	// ListBreakGlass lists a user's grants that are still valid at at.
	ListBreakGlass(ctx context.Context, userID string, at time.Time) ([]BreakGlass, error)

	CreateResetToken(ctx context.Context, t ResetToken) error
	// UseResetToken marks an unused, unexpired token used and returns it;
	// otherwise ErrNotFound.
	UseResetToken(ctx context.Context, tokenHash []byte, at time.Time) (ResetToken, error)
}

// AuditRecord is one entry of the hash-chained audit log. Hash covers every
// other field and PrevHash (internal/audit computes it); Seq runs 1, 2, 3…
type AuditRecord struct {
	Seq        int64
	At         time.Time
	OrgID      string
	Actor      string
	SourceIP   string
	Action     string
	ObjectType string
	ObjectID   string
	Outcome    string
	Severity   string
	Details    string // JSON
	PrevHash   []byte
	Hash       []byte
}

// AuditCheckpoint is a signature over the chain head at Seq.
type AuditCheckpoint struct {
	Seq       int64
	At        time.Time
	Hash      []byte
	Signature []byte
}

// AuditFilter selects audit records.
type AuditFilter struct {
	OrgID    string // "" for every organisation
	Actor    string
	Action   string
	AfterSeq int64 // records with Seq > AfterSeq
	Limit    int   // 0: no limit
}

// AuditStore keeps the audit log. Records are only ever appended.
type AuditStore interface {
	// AppendAudit appends records in one transaction, serialised against
	// every other appender (also in other processes): it reads the head
	// (Seq 0 and nil hash when empty) and calls chain with it, which must
	// fill Seq, PrevHash and Hash of each record in order.
	AppendAudit(ctx context.Context, recs []AuditRecord, chain func(headSeq int64, headHash []byte, recs []AuditRecord) error) error
	// ListAudit returns records in Seq order.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error)
	PutAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error
	ListAuditCheckpoints(ctx context.Context) ([]AuditCheckpoint, error) // by Seq
}
