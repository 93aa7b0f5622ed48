package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"vigil/internal/store"
)

// The tables of schema 9 keep times as INTEGER Unix nanoseconds with 0 for
// the zero time (not NULL, unlike the older tables).

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

func optString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

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
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", op, classify(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	} else if n == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return nil
}

// execCount runs a write and returns how many rows it changed.
func (s *Store) execCount(ctx context.Context, op, q string, args ...any) (int, error) {
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return int(n), nil
}

// exists reports whether q (SELECT 1 … ) finds a row, on the writer so that
// it sees the write just made.
func (s *Store) exists(ctx context.Context, q string, args ...any) (bool, error) {
	var one int
	err := s.w.QueryRowContext(ctx, q, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// --- users ----------------------------------------------------------------

const userCols = `id, email, name, password_hash, provider, person_id, totp_seed, totp_last_step, oidc_subject,
	created_at, password_changed_at, disabled_at`

func scanUser(sc scanner) (store.User, error) {
	var u store.User
	var person, oidc sql.NullString
	var created, changed, disabled int64
	err := sc.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Provider, &person, &u.TOTPSeed, &u.TOTPLastStep, &oidc,
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
	_, err := s.w.ExecContext(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, email, u.Name, u.PasswordHash, u.Provider, optString(u.PersonID), nullBytes(u.TOTPSeed), u.TOTPLastStep,
		optString(u.OIDCSubject), epochNS(orNow(u.CreatedAt)), epochNS(u.PasswordChangedAt), epochNS(u.DisabledAt))
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, classify(err))
	}
	return nil
}

func (s *Store) getUser(ctx context.Context, op, where string, arg any) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE `+where+` = ?`, arg))
	if errors.Is(err, sql.ErrNoRows) {
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
	q, args := `SELECT `+userCols+` FROM users ORDER BY email, id`, []any(nil)
	if orgID != "" {
		q = `SELECT ` + userCols + ` FROM users WHERE id IN (SELECT user_id FROM memberships WHERE org_id = ?) ORDER BY email, id`
		args = append(args, orgID)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list users of %q: %w", orgID, err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users of %q: %w", orgID, err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users of %q: %w", orgID, err)
	}
	return out, nil
}

// SetPasswordHash sets a user's password hash and when it changed.
func (s *Store) SetPasswordHash(ctx context.Context, userID, hash string, at time.Time) error {
	return s.execOne(ctx, "set password of user "+userID,
		`UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?`, hash, epochNS(orNow(at)), userID)
}

// SetUserName sets a user's display name.
func (s *Store) SetUserName(ctx context.Context, userID, name string) error {
	return s.execOne(ctx, "set name of user "+userID, `UPDATE users SET name = ? WHERE id = ?`, name, userID)
}

// SetUserPerson links a user to the person they are ("" unlinks); an
// unknown person is ErrNotFound.
func (s *Store) SetUserPerson(ctx context.Context, userID, personID string) error {
	return s.execOne(ctx, "set person of user "+userID,
		`UPDATE users SET person_id = ? WHERE id = ?`, optString(personID), userID)
}

// SetOIDCSubject links a user to an IdP account ("" unlinks); a subject
// linked to another user is ErrConflict.
func (s *Store) SetOIDCSubject(ctx context.Context, userID, subject string) error {
	return s.execOne(ctx, "set oidc subject of user "+userID,
		`UPDATE users SET oidc_subject = ? WHERE id = ?`, optString(subject), userID)
}

// SetTOTP stores a sealed TOTP seed (nil removes it) and the last accepted
// step.
func (s *Store) SetTOTP(ctx context.Context, userID string, sealedSeed []byte, lastStep int64) error {
	return s.execOne(ctx, "set totp of user "+userID,
		`UPDATE users SET totp_seed = ?, totp_last_step = ? WHERE id = ?`, nullBytes(sealedSeed), lastStep, userID)
}

// UseTOTPStep advances a user's last accepted step to step in one
// conditional UPDATE; a step not above the stored one is ErrConflict.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	n, err := s.execCount(ctx, "use totp step of user "+userID,
		`UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?`, step, userID, step)
	if err != nil || n == 1 {
		return err
	}
	ok, err := s.exists(ctx, `SELECT 1 FROM users WHERE id = ?`, userID)
	if err != nil {
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
		`UPDATE users SET disabled_at = ? WHERE id = ?`, epochNS(at), userID)
}

// --- memberships and carers -----------------------------------------------

// PutMembership gives a user a role in an organisation, or changes it
// (keeping when the membership began).
func (s *Store) PutMembership(ctx context.Context, m store.Membership) error {
	if !validRole(m.Role) {
		return fmt.Errorf("put membership of %s in %s: unknown role %q", m.UserID, m.OrgID, m.Role)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO memberships (user_id, org_id, role, created_at) VALUES (?, ?, ?, ?)
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
		`DELETE FROM memberships WHERE user_id = ? AND org_id = ?`, userID, orgID)
}

// ListMemberships lists a user's memberships by organisation id.
func (s *Store) ListMemberships(ctx context.Context, userID string) ([]store.Membership, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT user_id, org_id, role, created_at FROM memberships WHERE user_id = ? ORDER BY org_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list memberships of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []store.Membership
	for rows.Next() {
		var m store.Membership
		var created int64
		if err := rows.Scan(&m.UserID, &m.OrgID, &m.Role, &created); err != nil {
			return nil, fmt.Errorf("list memberships of %s: %w", userID, err)
		}
		m.CreatedAt = fromEpochNS(created)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list memberships of %s: %w", userID, err)
	}
	return out, nil
}

// CountAdmins counts the enabled users with role admin in an organisation.
func (s *Store) CountAdmins(ctx context.Context, orgID string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.org_id = ? AND m.role = 'admin' AND u.disabled_at = 0`, orgID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count admins of %s: %w", orgID, err)
	}
	return n, nil
}

// LinkCarer lets a carer user see a person; linking again changes nothing.
func (s *Store) LinkCarer(ctx context.Context, userID, personID string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO carer_links (user_id, person_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, userID, personID)
	if err != nil {
		return fmt.Errorf("link carer %s to %s: %w", userID, personID, classify(err))
	}
	return nil
}

// UnlinkCarer removes a carer link; an absent one is ErrNotFound.
func (s *Store) UnlinkCarer(ctx context.Context, userID, personID string) error {
	return s.execOne(ctx, fmt.Sprintf("unlink carer %s from %s", userID, personID),
		`DELETE FROM carer_links WHERE user_id = ? AND person_id = ?`, userID, personID)
}

// ListCarerPeople lists the ids of the people a carer is linked to, sorted.
func (s *Store) ListCarerPeople(ctx context.Context, userID string) ([]string, error) {
	ids, err := listStrings(ctx, s.r, `SELECT person_id FROM carer_links WHERE user_id = ? ORDER BY person_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list people of carer %s: %w", userID, err)
	}
	return ids, nil
}

func listStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// --- teams ----------------------------------------------------------------

// CreateTeam inserts a team (its Members are ignored); a taken id or name
// in the organisation is ErrConflict, an unknown organisation ErrNotFound.
func (s *Store) CreateTeam(ctx context.Context, t store.Team) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO teams (id, org_id, name, created_at) VALUES (?, ?, ?, ?)`,
		t.ID, t.OrgID, t.Name, epochNS(orNow(t.CreatedAt)))
	if err != nil {
		return fmt.Errorf("create team %s: %w", t.ID, classify(err))
	}
	return nil
}

// GetTeam returns a team with its members or ErrNotFound.
func (s *Store) GetTeam(ctx context.Context, id string) (store.Team, error) {
	// One read transaction: the team and its members as of one moment.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return store.Team{}, fmt.Errorf("get team %s: %w", id, err)
	}
	defer tx.Rollback()
	var t store.Team
	var created int64
	err = tx.QueryRowContext(ctx, `SELECT id, org_id, name, created_at FROM teams WHERE id = ?`, id).Scan(&t.ID, &t.OrgID, &t.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Team{}, fmt.Errorf("get team %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Team{}, fmt.Errorf("get team %s: %w", id, err)
	}
	t.CreatedAt = fromEpochNS(created)
	if t.Members, err = listStrings(ctx, tx, `SELECT user_id FROM team_members WHERE team_id = ? ORDER BY user_id`, id); err != nil {
		return store.Team{}, fmt.Errorf("get team %s: %w", id, err)
	}
	return t, nil
}

// ListTeams lists an organisation's teams by name, with their members.
func (s *Store) ListTeams(ctx context.Context, orgID string) ([]store.Team, error) {
	// One read transaction: the teams and their members as of one moment.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("list teams of %s: %w", orgID, err)
	}
	defer tx.Rollback()
	out, err := listTeams(ctx, tx, orgID)
	if err != nil {
		return nil, fmt.Errorf("list teams of %s: %w", orgID, err)
	}
	return out, nil
}

func listTeams(ctx context.Context, q querier, orgID string) ([]store.Team, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, org_id, name, created_at FROM teams WHERE org_id = ? ORDER BY name, id`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Team
	index := make(map[string]int)
	for rows.Next() {
		var t store.Team
		var created int64
		if err := rows.Scan(&t.ID, &t.OrgID, &t.Name, &created); err != nil {
			return nil, err
		}
		t.CreatedAt = fromEpochNS(created)
		index[t.ID] = len(out)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(out) == 0 {
		return out, nil
	}
	mrows, err := q.QueryContext(ctx, `SELECT tm.team_id, tm.user_id FROM team_members tm JOIN teams t ON t.id = tm.team_id
		WHERE t.org_id = ? ORDER BY tm.team_id, tm.user_id`, orgID)
	if err != nil {
		return nil, err
	}
	defer mrows.Close()
	for mrows.Next() {
		var team, user string
		if err := mrows.Scan(&team, &user); err != nil {
			return nil, err
		}
		if i, ok := index[team]; ok {
			out[i].Members = append(out[i].Members, user)
		}
	}
	return out, mrows.Err()
}

// AddTeamMember adds a user to a team; adding a member again changes
// nothing. An unknown team or user is ErrNotFound.
func (s *Store) AddTeamMember(ctx context.Context, teamID, userID string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO team_members (team_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, teamID, userID)
	if err != nil {
		return fmt.Errorf("add %s to team %s: %w", userID, teamID, classify(err))
	}
	return nil
}

// RemoveTeamMember removes a user from a team; a non-member is ErrNotFound.
func (s *Store) RemoveTeamMember(ctx context.Context, teamID, userID string) error {
	return s.execOne(ctx, fmt.Sprintf("remove %s from team %s", userID, teamID),
		`DELETE FROM team_members WHERE team_id = ? AND user_id = ?`, teamID, userID)
}

// DeleteTeam deletes a team and its memberships.
func (s *Store) DeleteTeam(ctx context.Context, id string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete team %s: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM team_members WHERE team_id = ?`, id); err != nil {
		return fmt.Errorf("delete team %s: %w", id, err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM teams WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete team %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete team %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("delete team %s: %w", id, store.ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete team %s: commit: %w", id, err)
	}
	return nil
}

// --- contacts and notes -----------------------------------------------------

const contactCols = `id, org_id, person_id, name, relation, phone, email, priority, created_at`

func scanContact(sc scanner) (store.Contact, error) {
	var c store.Contact
	var created int64
	err := sc.Scan(&c.ID, &c.OrgID, &c.PersonID, &c.Name, &c.Relation, &c.Phone, &c.Email, &c.Priority, &created)
	c.CreatedAt = fromEpochNS(created)
	return c, err
}

// PutContact creates a contact or replaces the one with its id (keeping
// when it was created). The person must be one of the contact's
// organisation: otherwise ErrNotFound.
func (s *Store) PutContact(ctx context.Context, c store.Contact) error {
	n, err := s.execCount(ctx, "put contact "+c.ID, `INSERT INTO contacts (`+contactCols+`)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? FROM people WHERE id = ? AND org_id = ?
		ON CONFLICT (id) DO UPDATE SET org_id = excluded.org_id, person_id = excluded.person_id, name = excluded.name,
			relation = excluded.relation, phone = excluded.phone, email = excluded.email, priority = excluded.priority`,
		c.ID, c.OrgID, c.PersonID, c.Name, c.Relation, c.Phone, c.Email, c.Priority, epochNS(orNow(c.CreatedAt)),
		c.PersonID, c.OrgID)
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
	c, err := scanContact(s.r.QueryRowContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Contact{}, fmt.Errorf("get contact %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Contact{}, fmt.Errorf("get contact %s: %w", id, err)
	}
	return c, nil
}

// ListContacts lists a person's contacts by priority, then name.
func (s *Store) ListContacts(ctx context.Context, personID string) ([]store.Contact, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE person_id = ? ORDER BY priority, name, id`, personID)
	if err != nil {
		return nil, fmt.Errorf("list contacts of %s: %w", personID, err)
	}
	defer rows.Close()
	var out []store.Contact
	for rows.Next() {
		c, err := scanContact(rows)
		if err != nil {
			return nil, fmt.Errorf("list contacts of %s: %w", personID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list contacts of %s: %w", personID, err)
	}
	return out, nil
}

// DeleteContact deletes a contact.
func (s *Store) DeleteContact(ctx context.Context, id string) error {
	return s.execOne(ctx, "delete contact "+id, `DELETE FROM contacts WHERE id = ?`, id)
}

// SetPersonNotes sets a person's medical notes.
func (s *Store) SetPersonNotes(ctx context.Context, personID, notes string) error {
	return s.execOne(ctx, "set notes of person "+personID, `UPDATE people SET medical_notes = ? WHERE id = ?`, notes, personID)
}

// GetPersonNotes returns a person's medical notes ("" when none).
func (s *Store) GetPersonNotes(ctx context.Context, personID string) (string, error) {
	var notes string
	err := s.r.QueryRowContext(ctx, `SELECT medical_notes FROM people WHERE id = ?`, personID).Scan(&notes)
	if errors.Is(err, sql.ErrNoRows) {
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
	return s.execOne(ctx, "set require webauthn of org "+orgID, `UPDATE orgs SET require_webauthn = ? WHERE id = ?`, on, orgID)
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
	_, err := s.w.ExecContext(ctx, `INSERT INTO web_sessions (`+webSessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
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
	err := s.r.QueryRowContext(ctx, `SELECT `+webSessionCols+` FROM web_sessions WHERE id_hash = ?`, idHash).
		Scan(&ws.IDHash, &ws.UserID, &created, &seen, &expires, &mfa, &ws.MFAMethod, &ws.SourceIP)
	if errors.Is(err, sql.ErrNoRows) {
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
		`UPDATE web_sessions SET last_seen_at = max(last_seen_at, ?) WHERE id_hash = ?`, epochNS(orNow(at)), idHash)
}

// SetWebSessionMFA records a completed second factor.
func (s *Store) SetWebSessionMFA(ctx context.Context, idHash []byte, at time.Time, method string) error {
	return s.execOne(ctx, "set mfa of web session",
		`UPDATE web_sessions SET mfa_at = ?, mfa_method = ? WHERE id_hash = ?`, epochNS(orNow(at)), method, idHash)
}

// DeleteWebSession ends a session.
func (s *Store) DeleteWebSession(ctx context.Context, idHash []byte) error {
	return s.execOne(ctx, "delete web session", `DELETE FROM web_sessions WHERE id_hash = ?`, idHash)
}

// DeleteUserWebSessions ends a user's sessions but keep (nil: all).
func (s *Store) DeleteUserWebSessions(ctx context.Context, userID string, keep []byte) (int, error) {
	if keep == nil {
		return s.execCount(ctx, "delete web sessions of "+userID, `DELETE FROM web_sessions WHERE user_id = ?`, userID)
	}
	return s.execCount(ctx, "delete web sessions of "+userID,
		`DELETE FROM web_sessions WHERE user_id = ? AND id_hash <> ?`, userID, keep)
}

// DeleteExpiredWebSessions removes sessions that expired before at or were
// last seen before idleBefore (a zero time skips that test).
func (s *Store) DeleteExpiredWebSessions(ctx context.Context, at, idleBefore time.Time) (int, error) {
	return s.execCount(ctx, "delete expired web sessions",
		`DELETE FROM web_sessions WHERE expires_at < ? OR last_seen_at < ?`, epochNS(at), epochNS(idleBefore))
}

// --- recovery codes -------------------------------------------------------

// ReplaceRecoveryCodes swaps a user's recovery codes for new hashes in one
// transaction; an unknown user is ErrNotFound.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("replace recovery codes of %s: %w", userID, err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = ?`, userID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("replace recovery codes of %s: %w", userID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("replace recovery codes of %s: %w", userID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("replace recovery codes of %s: %w", userID, err)
	}
	for _, h := range hashes {
		if len(h) == 0 {
			return fmt.Errorf("replace recovery codes of %s: empty hash", userID)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)`, userID, h); err != nil {
			return fmt.Errorf("replace recovery codes of %s: %w", userID, classify(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("replace recovery codes of %s: commit: %w", userID, err)
	}
	return nil
}

// UseRecoveryCode marks an unused code used in one conditional UPDATE; an
// unknown or used code is ErrNotFound.
func (s *Store) UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) error {
	return s.execOne(ctx, "use recovery code of "+userID,
		`UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at = 0`,
		epochNS(orNow(at)), userID, hash)
}

// CountRecoveryCodes counts a user's unused recovery codes.
func (s *Store) CountRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at = 0`, userID).Scan(&n); err != nil {
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
		(id, user_id, name, data, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?)
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
	rows, err := s.r.QueryContext(ctx, `SELECT id, user_id, name, data, created_at, last_used_at FROM webauthn_credentials
		WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list webauthn credentials of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []store.WebAuthnCredential
	for rows.Next() {
		var c store.WebAuthnCredential
		var created, used int64
		if err := rows.Scan(&c.ID, &c.UserID, &c.Name, &c.Data, &created, &used); err != nil {
			return nil, fmt.Errorf("list webauthn credentials of %s: %w", userID, err)
		}
		c.CreatedAt, c.LastUsedAt = fromEpochNS(created), fromEpochNS(used)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webauthn credentials of %s: %w", userID, err)
	}
	return out, nil
}

// DeleteWebAuthnCredential deletes one of a user's credentials.
func (s *Store) DeleteWebAuthnCredential(ctx context.Context, userID string, id []byte) error {
	return s.execOne(ctx, "delete webauthn credential of "+userID,
		`DELETE FROM webauthn_credentials WHERE user_id = ? AND id = ?`, userID, id)
}

// --- API tokens -----------------------------------------------------------

const apiTokenCols = `id, org_id, name, secret_hash, permissions, created_by, created_at, expires_at, revoked_at, last_used_at`

func scanAPIToken(sc scanner) (store.APIToken, error) {
	var t store.APIToken
	var perms string
	var created, expires, revoked, used int64
	err := sc.Scan(&t.ID, &t.OrgID, &t.Name, &t.SecretHash, &perms, &t.CreatedBy, &created, &expires, &revoked, &used)
	t.Permissions = strings.Fields(perms)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt, t.LastUsedAt = fromEpochNS(created), fromEpochNS(expires), fromEpochNS(revoked), fromEpochNS(used)
	return t, err
}

// joinPermissions is the stored, space-separated form of a permission set.
func joinPermissions(perms []string) (string, error) {
	for _, p := range perms {
		if p == "" || strings.ContainsFunc(p, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
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
	_, err = s.w.ExecContext(ctx, `INSERT INTO api_tokens (`+apiTokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.OrgID, t.Name, t.SecretHash, perms, t.CreatedBy, epochNS(orNow(t.CreatedAt)), epochNS(t.ExpiresAt),
		epochNS(t.RevokedAt), epochNS(t.LastUsedAt))
	if err != nil {
		return fmt.Errorf("create api token %s: %w", t.ID, classify(err))
	}
	return nil
}

// GetAPIToken returns a token or ErrNotFound.
func (s *Store) GetAPIToken(ctx context.Context, id string) (store.APIToken, error) {
	t, err := scanAPIToken(s.r.QueryRowContext(ctx, `SELECT `+apiTokenCols+` FROM api_tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.APIToken{}, fmt.Errorf("get api token %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.APIToken{}, fmt.Errorf("get api token %s: %w", id, err)
	}
	return t, nil
}

// ListAPITokens lists an organisation's tokens, newest first.
func (s *Store) ListAPITokens(ctx context.Context, orgID string) ([]store.APIToken, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+apiTokenCols+` FROM api_tokens WHERE org_id = ? ORDER BY created_at DESC, id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list api tokens of %s: %w", orgID, err)
	}
	defer rows.Close()
	var out []store.APIToken
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list api tokens of %s: %w", orgID, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api tokens of %s: %w", orgID, err)
	}
	return out, nil
}

// RevokeAPIToken revokes a token; revoking again keeps the first time.
func (s *Store) RevokeAPIToken(ctx context.Context, id string, at time.Time) error {
	return s.execOne(ctx, "revoke api token "+id,
		`UPDATE api_tokens SET revoked_at = iif(revoked_at = 0, ?, revoked_at) WHERE id = ?`, epochNS(orNow(at)), id)
}

// TouchAPIToken records a use of a token; it never moves last use back.
func (s *Store) TouchAPIToken(ctx context.Context, id string, at time.Time) error {
	return s.execOne(ctx, "touch api token "+id,
		`UPDATE api_tokens SET last_used_at = max(last_used_at, ?) WHERE id = ?`, epochNS(orNow(at)), id)
}

// --- password resets ------------------------------------------------------

// CreateResetToken stores a pending password reset; an unknown user is
// ErrNotFound.
func (s *Store) CreateResetToken(ctx context.Context, t store.ResetToken) error {
	if len(t.TokenHash) == 0 {
		return fmt.Errorf("create reset token of %s: empty hash", t.UserID)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO reset_tokens (token_hash, user_id, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?)`,
		t.TokenHash, t.UserID, epochNS(orNow(t.CreatedAt)), epochNS(t.ExpiresAt), epochNS(t.UsedAt))
	if err != nil {
		return fmt.Errorf("create reset token of %s: %w", t.UserID, classify(err))
	}
	return nil
}

// UseResetToken marks an unused token that expires after at used, in one
// conditional UPDATE, and returns it; otherwise ErrNotFound.
func (s *Store) UseResetToken(ctx context.Context, tokenHash []byte, at time.Time) (store.ResetToken, error) {
	now := epochNS(orNow(at))
	var t store.ResetToken
	var created, expires, used int64
	err := s.w.QueryRowContext(ctx, `UPDATE reset_tokens SET used_at = ?1
		WHERE token_hash = ?2 AND used_at = 0 AND expires_at > ?1
		RETURNING token_hash, user_id, created_at, expires_at, used_at`, now, tokenHash).
		Scan(&t.TokenHash, &t.UserID, &created, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ResetToken{}, fmt.Errorf("use reset token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.ResetToken{}, fmt.Errorf("use reset token: %w", err)
	}
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromEpochNS(created), fromEpochNS(expires), fromEpochNS(used)
	return t, nil
}
