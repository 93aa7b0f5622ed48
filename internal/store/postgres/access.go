package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"vigil/internal/store"
)

// The tables of schema 9 keep times as bigint Unix nanoseconds with 0 for
// the zero time, as SQLite does. Lists sort with COLLATE "C" (byte order),
// so that both dialects, and Go's sort, agree whatever the database's
// locale.

func epochNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromEpochNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func normEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func validRole(r store.Role) bool {
	switch r {
	case store.RoleAdmin, store.RoleSupervisor, store.RoleResponder, store.RoleAuditor,
		store.RoleWorker, store.RoleCarer, store.RoleProvider:
		return true
	}
	return false
}

// execOne runs a write that must change a row: none is ErrNotFound.
func (s *Store) execOne(ctx context.Context, op, q string, args ...any) error {
	n, err := s.execCount(ctx, op, q, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return nil
}

// execCount runs a write and returns how many rows it changed.
func (s *Store) execCount(ctx context.Context, op, q string, args ...any) (int, error) {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, classify(err))
	}
	return int(tag.RowsAffected()), nil
}

// --- users ----------------------------------------------------------------

const userCols = `id, email, name, password_hash, provider, person_id, totp_seed, totp_last_step, oidc_subject,
	created_at, password_changed_at, disabled_at`

func scanUser(r pgx.Row) (store.User, error) {
	var u store.User
	var person, oidc pgtype.Text
	var created, changed, disabled int64
	err := r.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Provider, &person, &u.TOTPSeed, &u.TOTPLastStep, &oidc,
		&created, &changed, &disabled)
	u.PersonID, u.OIDCSubject = person.String, oidc.String
	u.CreatedAt, u.PasswordChangedAt, u.DisabledAt = fromEpochNS(created), fromEpochNS(changed), fromEpochNS(disabled)
	return u, err
}

// CreateUser inserts a user, its email lower-cased; a taken id, email or
// OIDC subject is ErrConflict, an unknown person ErrNotFound.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	email := normEmail(u.Email)
	if email == "" {
		return fmt.Errorf("create user %s: email is empty", u.ID)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		u.ID, email, u.Name, u.PasswordHash, u.Provider, text(u.PersonID), nullBytes(u.TOTPSeed), u.TOTPLastStep,
		text(u.OIDCSubject), epochNS(orNow(u.CreatedAt)), epochNS(u.PasswordChangedAt), epochNS(u.DisabledAt))
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, classify(err))
	}
	return nil
}

func (s *Store) getUser(ctx context.Context, op, where string, arg any) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE `+where+` = $1`, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.User{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("%s: %w", op, err)
	}
	return u, nil
}

// GetUser returns a user or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	return s.getUser(ctx, "get user "+id, "id", id)
}

// GetUserByEmail returns the user with an email, compared lower-cased, or
// ErrNotFound.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (store.User, error) {
	// The email is personal data: it stays out of the error text.
	return s.getUser(ctx, "get user by email", "email", normEmail(email))
}

// GetUserByOIDC returns the user linked to an IdP subject or ErrNotFound.
func (s *Store) GetUserByOIDC(ctx context.Context, subject string) (store.User, error) {
	if subject == "" {
		return store.User{}, fmt.Errorf("get user by oidc subject: %w", store.ErrNotFound)
	}
	return s.getUser(ctx, "get user by oidc subject", "oidc_subject", subject)
}

// ListUsers lists the users with a membership in orgID (every user for
// ""), by email.
func (s *Store) ListUsers(ctx context.Context, orgID string) ([]store.User, error) {
	q, args := `SELECT `+userCols+` FROM users ORDER BY email COLLATE "C", id COLLATE "C"`, []any(nil)
	if orgID != "" {
		q = `SELECT ` + userCols + ` FROM users WHERE id IN (SELECT user_id FROM memberships WHERE org_id = $1)
			ORDER BY email COLLATE "C", id COLLATE "C"`
		args = append(args, orgID)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list users of %q: %w", orgID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.User, error) { return scanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("list users of %q: %w", orgID, err)
	}
	return out, nil
}

// SetPasswordHash sets a user's password hash and when it changed.
func (s *Store) SetPasswordHash(ctx context.Context, userID, hash string, at time.Time) error {
	return s.execOne(ctx, "set password of user "+userID,
		`UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3`, hash, epochNS(orNow(at)), userID)
}

// SetUserName sets a user's display name.
func (s *Store) SetUserName(ctx context.Context, userID, name string) error {
	return s.execOne(ctx, "set name of user "+userID, `UPDATE users SET name = $1 WHERE id = $2`, name, userID)
}

// SetUserPerson links a user to the person they are ("" unlinks); an
// unknown person is ErrNotFound.
func (s *Store) SetUserPerson(ctx context.Context, userID, personID string) error {
	return s.execOne(ctx, "set person of user "+userID,
		`UPDATE users SET person_id = $1 WHERE id = $2`, text(personID), userID)
}

// SetOIDCSubject links a user to an IdP account ("" unlinks); a subject
// linked to another user is ErrConflict.
func (s *Store) SetOIDCSubject(ctx context.Context, userID, subject string) error {
	return s.execOne(ctx, "set oidc subject of user "+userID,
		`UPDATE users SET oidc_subject = $1 WHERE id = $2`, text(subject), userID)
}

// SetTOTP stores a sealed TOTP seed (nil removes it) and the last accepted
// step.
func (s *Store) SetTOTP(ctx context.Context, userID string, sealedSeed []byte, lastStep int64) error {
	return s.execOne(ctx, "set totp of user "+userID,
		`UPDATE users SET totp_seed = $1, totp_last_step = $2 WHERE id = $3`, nullBytes(sealedSeed), lastStep, userID)
}

// UseTOTPStep advances a user's last accepted step to step in one
// conditional UPDATE (concurrent ones wait on the row lock and then see
// the winner's step); a step not above the stored one is ErrConflict.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	n, err := s.execCount(ctx, "use totp step of user "+userID,
		`UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1`, step, userID)
	if err != nil || n == 1 {
		return err
	}
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, userID).Scan(&ok); err != nil {
		return fmt.Errorf("use totp step of user %s: %w", userID, err)
	}
	if !ok {
		return fmt.Errorf("use totp step of user %s: %w", userID, store.ErrNotFound)
	}
	return fmt.Errorf("use totp step of user %s: step already used: %w", userID, store.ErrConflict)
}

// SetUserDisabled disables a user at a time (zero enables).
func (s *Store) SetUserDisabled(ctx context.Context, userID string, at time.Time) error {
	return s.execOne(ctx, "set disabled of user "+userID,
		`UPDATE users SET disabled_at = $1 WHERE id = $2`, epochNS(at), userID)
}

// --- memberships and carers -----------------------------------------------

// PutMembership gives a user a role in an organisation, or changes it
// (keeping when the membership began).
func (s *Store) PutMembership(ctx context.Context, m store.Membership) error {
	if !validRole(m.Role) {
		return fmt.Errorf("put membership of %s in %s: unknown role %q", m.UserID, m.OrgID, m.Role)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO memberships (user_id, org_id, role, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, org_id) DO UPDATE SET role = excluded.role`,
		m.UserID, m.OrgID, string(m.Role), epochNS(orNow(m.CreatedAt)))
	if err != nil {
		return fmt.Errorf("put membership of %s in %s: %w", m.UserID, m.OrgID, classify(err))
	}
	return nil
}

// DeleteMembership removes a user's role in an organisation.
func (s *Store) DeleteMembership(ctx context.Context, userID, orgID string) error {
	return s.execOne(ctx, fmt.Sprintf("delete membership of %s in %s", userID, orgID),
		`DELETE FROM memberships WHERE user_id = $1 AND org_id = $2`, userID, orgID)
}

// ListMemberships lists a user's memberships by organisation id.
func (s *Store) ListMemberships(ctx context.Context, userID string) ([]store.Membership, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id, org_id, role, created_at FROM memberships WHERE user_id = $1
		ORDER BY org_id COLLATE "C"`, userID)
	if err != nil {
		return nil, fmt.Errorf("list memberships of %s: %w", userID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Membership, error) {
		var m store.Membership
		var role string
		var created int64
		err := r.Scan(&m.UserID, &m.OrgID, &role, &created)
		m.Role, m.CreatedAt = store.Role(role), fromEpochNS(created)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("list memberships of %s: %w", userID, err)
	}
	return out, nil
}

// CountAdmins counts the enabled users with role admin in an organisation.
func (s *Store) CountAdmins(ctx context.Context, orgID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.org_id = $1 AND m.role = 'admin' AND u.disabled_at = 0`, orgID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count admins of %s: %w", orgID, err)
	}
	return n, nil
}

// LinkCarer lets a carer user see a person; linking again changes nothing.
func (s *Store) LinkCarer(ctx context.Context, userID, personID string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO carer_links (user_id, person_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, userID, personID)
	if err != nil {
		return fmt.Errorf("link carer %s to %s: %w", userID, personID, classify(err))
	}
	return nil
}

// UnlinkCarer removes a carer link; an absent one is ErrNotFound.
func (s *Store) UnlinkCarer(ctx context.Context, userID, personID string) error {
	return s.execOne(ctx, fmt.Sprintf("unlink carer %s from %s", userID, personID),
		`DELETE FROM carer_links WHERE user_id = $1 AND person_id = $2`, userID, personID)
}

// ListCarerPeople lists the ids of the people a carer is linked to, sorted.
func (s *Store) ListCarerPeople(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT person_id FROM carer_links WHERE user_id = $1 ORDER BY person_id COLLATE "C"`, userID)
	if err != nil {
		return nil, fmt.Errorf("list people of carer %s: %w", userID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list people of carer %s: %w", userID, err)
	}
	return ids, nil
}

// --- teams ----------------------------------------------------------------

// teamQuery selects teams with their members, sorted, in one statement.
const teamQuery = `SELECT t.id, t.org_id, t.name, t.created_at,
		coalesce(array_agg(m.user_id ORDER BY m.user_id COLLATE "C") FILTER (WHERE m.user_id IS NOT NULL), '{}')
	FROM teams t LEFT JOIN team_members m ON m.team_id = t.id`

func scanTeam(r pgx.CollectableRow) (store.Team, error) {
	var t store.Team
	var created int64
	err := r.Scan(&t.ID, &t.OrgID, &t.Name, &created, &t.Members)
	t.CreatedAt = fromEpochNS(created)
	return t, err
}

// CreateTeam inserts a team (its Members are ignored); a taken id or name
// in the organisation is ErrConflict, an unknown organisation ErrNotFound.
func (s *Store) CreateTeam(ctx context.Context, t store.Team) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO teams (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)`,
		t.ID, t.OrgID, t.Name, epochNS(orNow(t.CreatedAt)))
	if err != nil {
		return fmt.Errorf("create team %s: %w", t.ID, classify(err))
	}
	return nil
}

// GetTeam returns a team with its members or ErrNotFound.
func (s *Store) GetTeam(ctx context.Context, id string) (store.Team, error) {
	rows, err := s.pool.Query(ctx, teamQuery+` WHERE t.id = $1 GROUP BY t.id`, id)
	if err != nil {
		return store.Team{}, fmt.Errorf("get team %s: %w", id, err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTeam)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Team{}, fmt.Errorf("get team %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Team{}, fmt.Errorf("get team %s: %w", id, err)
	}
	return t, nil
}

// ListTeams lists an organisation's teams by name, with their members.
func (s *Store) ListTeams(ctx context.Context, orgID string) ([]store.Team, error) {
	rows, err := s.pool.Query(ctx, teamQuery+` WHERE t.org_id = $1 GROUP BY t.id ORDER BY t.name COLLATE "C", t.id COLLATE "C"`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list teams of %s: %w", orgID, err)
	}
	out, err := pgx.CollectRows(rows, scanTeam)
	if err != nil {
		return nil, fmt.Errorf("list teams of %s: %w", orgID, err)
	}
	return out, nil
}

// AddTeamMember adds a user to a team; adding a member again changes
// nothing. An unknown team or user is ErrNotFound.
func (s *Store) AddTeamMember(ctx context.Context, teamID, userID string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, teamID, userID)
	if err != nil {
		return fmt.Errorf("add %s to team %s: %w", userID, teamID, classify(err))
	}
	return nil
}

// RemoveTeamMember removes a user from a team; a non-member is ErrNotFound.
func (s *Store) RemoveTeamMember(ctx context.Context, teamID, userID string) error {
	return s.execOne(ctx, fmt.Sprintf("remove %s from team %s", userID, teamID),
		`DELETE FROM team_members WHERE team_id = $1 AND user_id = $2`, teamID, userID)
}

// DeleteTeam deletes a team and its memberships in one statement.
func (s *Store) DeleteTeam(ctx context.Context, id string) error {
	return s.execOne(ctx, "delete team "+id, `WITH m AS (DELETE FROM team_members WHERE team_id = $1)
		DELETE FROM teams WHERE id = $1`, id)
}

// --- contacts and notes -----------------------------------------------------

const contactCols = `id, org_id, person_id, name, relation, phone, email, priority, created_at`

func scanContact(r pgx.Row) (store.Contact, error) {
	var c store.Contact
	var prio, created int64
	err := r.Scan(&c.ID, &c.OrgID, &c.PersonID, &c.Name, &c.Relation, &c.Phone, &c.Email, &prio, &created)
	c.Priority, c.CreatedAt = int(prio), fromEpochNS(created)
	return c, err
}

// PutContact creates a contact or replaces the one with its id (keeping
// when it was created). The person must be one of the contact's
// organisation: otherwise ErrNotFound.
func (s *Store) PutContact(ctx context.Context, c store.Contact) error {
	n, err := s.execCount(ctx, "put contact "+c.ID, `INSERT INTO contacts (`+contactCols+`)
		SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::bigint, $9::bigint
		FROM people WHERE id = $3::text AND org_id = $2::text
		ON CONFLICT (id) DO UPDATE SET org_id = excluded.org_id, person_id = excluded.person_id, name = excluded.name,
			relation = excluded.relation, phone = excluded.phone, email = excluded.email, priority = excluded.priority`,
		c.ID, c.OrgID, c.PersonID, c.Name, c.Relation, c.Phone, c.Email, int64(c.Priority), epochNS(orNow(c.CreatedAt)))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("put contact %s: person %s in org %s: %w", c.ID, c.PersonID, c.OrgID, store.ErrNotFound)
	}
	return nil
}

// GetContact returns a contact or ErrNotFound.
func (s *Store) GetContact(ctx context.Context, id string) (store.Contact, error) {
	c, err := scanContact(s.pool.QueryRow(ctx, `SELECT `+contactCols+` FROM contacts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Contact{}, fmt.Errorf("get contact %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Contact{}, fmt.Errorf("get contact %s: %w", id, err)
	}
	return c, nil
}

// ListContacts lists a person's contacts by priority, then name.
func (s *Store) ListContacts(ctx context.Context, personID string) ([]store.Contact, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+contactCols+` FROM contacts WHERE person_id = $1
		ORDER BY priority, name COLLATE "C", id COLLATE "C"`, personID)
	if err != nil {
		return nil, fmt.Errorf("list contacts of %s: %w", personID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Contact, error) { return scanContact(r) })
	if err != nil {
		return nil, fmt.Errorf("list contacts of %s: %w", personID, err)
	}
	return out, nil
}

// DeleteContact deletes a contact.
func (s *Store) DeleteContact(ctx context.Context, id string) error {
	return s.execOne(ctx, "delete contact "+id, `DELETE FROM contacts WHERE id = $1`, id)
}

// SetPersonNotes sets a person's medical notes.
func (s *Store) SetPersonNotes(ctx context.Context, personID, notes string) error {
	return s.execOne(ctx, "set notes of person "+personID, `UPDATE people SET medical_notes = $1 WHERE id = $2`, notes, personID)
}

// GetPersonNotes returns a person's medical notes ("" when none).
func (s *Store) GetPersonNotes(ctx context.Context, personID string) (string, error) {
	var notes string
	err := s.pool.QueryRow(ctx, `SELECT medical_notes FROM people WHERE id = $1`, personID).Scan(&notes)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("get notes of person %s: %w", personID, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get notes of person %s: %w", personID, err)
	}
	return notes, nil
}

// SetOrgRequireWebAuthn sets whether an organisation's users need a
// passkey or security key.
func (s *Store) SetOrgRequireWebAuthn(ctx context.Context, orgID string, on bool) error {
	return s.execOne(ctx, "set require webauthn of org "+orgID, `UPDATE orgs SET require_webauthn = $1 WHERE id = $2`, on, orgID)
}

// --- web sessions ---------------------------------------------------------

const webSessionCols = `id_hash, user_id, created_at, last_seen_at, expires_at, mfa_at, mfa_method, source_ip`

// CreateWebSession stores a session; a zero LastSeenAt is its CreatedAt.
func (s *Store) CreateWebSession(ctx context.Context, ws store.WebSession) error {
	if len(ws.IDHash) == 0 {
		return errors.New("create web session: empty id hash")
	}
	created := orNow(ws.CreatedAt)
	seen := ws.LastSeenAt
	if seen.IsZero() {
		seen = created
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO web_sessions (`+webSessionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		ws.IDHash, ws.UserID, epochNS(created), epochNS(seen), epochNS(ws.ExpiresAt), epochNS(ws.MFAAt), ws.MFAMethod, ws.SourceIP)
	if err != nil {
		return fmt.Errorf("create web session of %s: %w", ws.UserID, classify(err))
	}
	return nil
}

// GetWebSession returns a session or ErrNotFound.
func (s *Store) GetWebSession(ctx context.Context, idHash []byte) (store.WebSession, error) {
	var ws store.WebSession
	var created, seen, expires, mfa int64
	err := s.pool.QueryRow(ctx, `SELECT `+webSessionCols+` FROM web_sessions WHERE id_hash = $1`, idHash).
		Scan(&ws.IDHash, &ws.UserID, &created, &seen, &expires, &mfa, &ws.MFAMethod, &ws.SourceIP)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.WebSession{}, fmt.Errorf("get web session: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.WebSession{}, fmt.Errorf("get web session: %w", err)
	}
	ws.CreatedAt, ws.LastSeenAt, ws.ExpiresAt, ws.MFAAt = fromEpochNS(created), fromEpochNS(seen), fromEpochNS(expires), fromEpochNS(mfa)
	return ws, nil
}

// TouchWebSession records activity at a time; it never moves last seen
// back.
func (s *Store) TouchWebSession(ctx context.Context, idHash []byte, at time.Time) error {
	return s.execOne(ctx, "touch web session",
		`UPDATE web_sessions SET last_seen_at = greatest(last_seen_at, $1::bigint) WHERE id_hash = $2`, epochNS(orNow(at)), idHash)
}

// SetWebSessionMFA records a completed second factor.
func (s *Store) SetWebSessionMFA(ctx context.Context, idHash []byte, at time.Time, method string) error {
	return s.execOne(ctx, "set mfa of web session",
		`UPDATE web_sessions SET mfa_at = $1, mfa_method = $2 WHERE id_hash = $3`, epochNS(orNow(at)), method, idHash)
}

// DeleteWebSession ends a session.
func (s *Store) DeleteWebSession(ctx context.Context, idHash []byte) error {
	return s.execOne(ctx, "delete web session", `DELETE FROM web_sessions WHERE id_hash = $1`, idHash)
}

// DeleteUserWebSessions ends a user's sessions but keep (nil: all).
func (s *Store) DeleteUserWebSessions(ctx context.Context, userID string, keep []byte) (int, error) {
	if keep == nil {
		return s.execCount(ctx, "delete web sessions of "+userID, `DELETE FROM web_sessions WHERE user_id = $1`, userID)
	}
	return s.execCount(ctx, "delete web sessions of "+userID,
		`DELETE FROM web_sessions WHERE user_id = $1 AND id_hash <> $2`, userID, keep)
}

// DeleteExpiredWebSessions removes sessions that expired before at or were
// last seen before idleBefore (a zero time skips that test).
func (s *Store) DeleteExpiredWebSessions(ctx context.Context, at, idleBefore time.Time) (int, error) {
	return s.execCount(ctx, "delete expired web sessions",
		`DELETE FROM web_sessions WHERE expires_at < $1 OR last_seen_at < $2`, epochNS(at), epochNS(idleBefore))
}

// --- recovery codes -------------------------------------------------------

// ReplaceRecoveryCodes swaps a user's recovery codes for new hashes in one
// transaction; an unknown user is ErrNotFound.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte) error {
	for _, h := range hashes {
		if len(h) == 0 {
			return fmt.Errorf("replace recovery codes of %s: empty hash", userID)
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The row lock serialises replacements of one user's codes.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE`, userID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM recovery_codes WHERE user_id = $1`, userID); err != nil {
			return err
		}
		if len(hashes) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, h FROM unnest($2::bytea[]) AS h`, userID, hashes)
		return classify(err)
	})
	if err != nil {
		return fmt.Errorf("replace recovery codes of %s: %w", userID, err)
	}
	return nil
}

// UseRecoveryCode marks an unused code used in one conditional UPDATE; an
// unknown or used code is ErrNotFound.
func (s *Store) UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) error {
	return s.execOne(ctx, "use recovery code of "+userID,
		`UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at = 0`,
		epochNS(orNow(at)), userID, hash)
}

// CountRecoveryCodes counts a user's unused recovery codes.
func (s *Store) CountRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at = 0`, userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count recovery codes of %s: %w", userID, err)
	}
	return n, nil
}

// --- WebAuthn credentials -------------------------------------------------

// PutWebAuthnCredential creates a credential or replaces its name, data
// and last use (keeping its creation time). A credential id registered to
// another user is ErrConflict.
func (s *Store) PutWebAuthnCredential(ctx context.Context, c store.WebAuthnCredential) error {
	if len(c.ID) == 0 {
		return fmt.Errorf("put webauthn credential of %s: empty id", c.UserID)
	}
	n, err := s.execCount(ctx, "put webauthn credential of "+c.UserID, `INSERT INTO webauthn_credentials
		(id, user_id, name, data, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, data = excluded.data, last_used_at = excluded.last_used_at
		WHERE webauthn_credentials.user_id = excluded.user_id`,
		c.ID, c.UserID, c.Name, c.Data, epochNS(orNow(c.CreatedAt)), epochNS(c.LastUsedAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("put webauthn credential of %s: id of another user: %w", c.UserID, store.ErrConflict)
	}
	return nil
}

// ListWebAuthnCredentials lists a user's credentials, oldest first.
func (s *Store) ListWebAuthnCredentials(ctx context.Context, userID string) ([]store.WebAuthnCredential, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, user_id, name, data, created_at, last_used_at FROM webauthn_credentials
		WHERE user_id = $1 ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list webauthn credentials of %s: %w", userID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.WebAuthnCredential, error) {
		var c store.WebAuthnCredential
		var created, used int64
		err := r.Scan(&c.ID, &c.UserID, &c.Name, &c.Data, &created, &used)
		c.CreatedAt, c.LastUsedAt = fromEpochNS(created), fromEpochNS(used)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("list webauthn credentials of %s: %w", userID, err)
	}
	return out, nil
}

// DeleteWebAuthnCredential deletes one of a user's credentials.
func (s *Store) DeleteWebAuthnCredential(ctx context.Context, userID string, id []byte) error {
	return s.execOne(ctx, "delete webauthn credential of "+userID,
		`DELETE FROM webauthn_credentials WHERE user_id = $1 AND id = $2`, userID, id)
}

// --- API tokens -----------------------------------------------------------

const apiTokenCols = `id, org_id, name, secret_hash, permissions, created_by, created_at, expires_at, revoked_at, last_used_at`

func scanAPIToken(r pgx.Row) (store.APIToken, error) {
	var t store.APIToken
	var perms string
	var created, expires, revoked, used int64
	err := r.Scan(&t.ID, &t.OrgID, &t.Name, &t.SecretHash, &perms, &t.CreatedBy, &created, &expires, &revoked, &used)
	t.Permissions = strings.Fields(perms)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt, t.LastUsedAt = fromEpochNS(created), fromEpochNS(expires), fromEpochNS(revoked), fromEpochNS(used)
	return t, err
}

// joinPermissions is the stored, space-separated form of a permission set.
func joinPermissions(perms []string) (string, error) {
	for _, p := range perms {
		if p == "" || strings.ContainsAny(p, " \t\r\n") {
			return "", fmt.Errorf("permission %q is empty or has white space", p)
		}
	}
	return strings.Join(perms, " "), nil
}

// CreateAPIToken stores a token; a taken id is ErrConflict, an unknown
// organisation ErrNotFound.
func (s *Store) CreateAPIToken(ctx context.Context, t store.APIToken) error {
	if len(t.SecretHash) == 0 {
		return fmt.Errorf("create api token %s: empty secret hash", t.ID)
	}
	perms, err := joinPermissions(t.Permissions)
	if err != nil {
		return fmt.Errorf("create api token %s: %w", t.ID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO api_tokens (`+apiTokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		t.ID, t.OrgID, t.Name, t.SecretHash, perms, t.CreatedBy, epochNS(orNow(t.CreatedAt)), epochNS(t.ExpiresAt),
		epochNS(t.RevokedAt), epochNS(t.LastUsedAt))
	if err != nil {
		return fmt.Errorf("create api token %s: %w", t.ID, classify(err))
	}
	return nil
}

// GetAPIToken returns a token or ErrNotFound.
func (s *Store) GetAPIToken(ctx context.Context, id string) (store.APIToken, error) {
	t, err := scanAPIToken(s.pool.QueryRow(ctx, `SELECT `+apiTokenCols+` FROM api_tokens WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.APIToken{}, fmt.Errorf("get api token %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.APIToken{}, fmt.Errorf("get api token %s: %w", id, err)
	}
	return t, nil
}

// ListAPITokens lists an organisation's tokens, newest first.
func (s *Store) ListAPITokens(ctx context.Context, orgID string) ([]store.APIToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiTokenCols+` FROM api_tokens WHERE org_id = $1
		ORDER BY created_at DESC, id COLLATE "C"`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list api tokens of %s: %w", orgID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.APIToken, error) { return scanAPIToken(r) })
	if err != nil {
		return nil, fmt.Errorf("list api tokens of %s: %w", orgID, err)
	}
	return out, nil
}

// RevokeAPIToken revokes a token; revoking again keeps the first time.
func (s *Store) RevokeAPIToken(ctx context.Context, id string, at time.Time) error {
	return s.execOne(ctx, "revoke api token "+id,
		`UPDATE api_tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN $1::bigint ELSE revoked_at END WHERE id = $2`,
		epochNS(orNow(at)), id)
}

// TouchAPIToken records a use of a token; it never moves last use back.
func (s *Store) TouchAPIToken(ctx context.Context, id string, at time.Time) error {
	return s.execOne(ctx, "touch api token "+id,
		`UPDATE api_tokens SET last_used_at = greatest(last_used_at, $1::bigint) WHERE id = $2`, epochNS(orNow(at)), id)
}

// --- password resets ------------------------------------------------------

// CreateResetToken stores a pending password reset; an unknown user is
// ErrNotFound.
func (s *Store) CreateResetToken(ctx context.Context, t store.ResetToken) error {
	if len(t.TokenHash) == 0 {
		return fmt.Errorf("create reset token of %s: empty hash", t.UserID)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO reset_tokens (token_hash, user_id, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5)`,
		t.TokenHash, t.UserID, epochNS(orNow(t.CreatedAt)), epochNS(t.ExpiresAt), epochNS(t.UsedAt))
	if err != nil {
		return fmt.Errorf("create reset token of %s: %w", t.UserID, classify(err))
	}
	return nil
}

// UseResetToken marks an unused token that expires after at used, in one
// conditional UPDATE, and returns it; otherwise ErrNotFound.
func (s *Store) UseResetToken(ctx context.Context, tokenHash []byte, at time.Time) (store.ResetToken, error) {
	var t store.ResetToken
	var created, expires, used int64
	err := s.pool.QueryRow(ctx, `UPDATE reset_tokens SET used_at = $1
		WHERE token_hash = $2 AND used_at = 0 AND expires_at > $1
		RETURNING token_hash, user_id, created_at, expires_at, used_at`, epochNS(orNow(at)), tokenHash).
		Scan(&t.TokenHash, &t.UserID, &created, &expires, &used)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ResetToken{}, fmt.Errorf("use reset token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.ResetToken{}, fmt.Errorf("use reset token: %w", err)
	}
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromEpochNS(created), fromEpochNS(expires), fromEpochNS(used)
	return t, nil
}
