package auth

import (
	"slices"
	"sort"

	"vigil/internal/store"
)

// Principal is who is calling: a signed-in user (with every role they hold)
// or an integration's API token (one organisation, a permission set).
type Principal struct {
	UserID   string
	Email    string
	Name     string
	Provider bool   // provider staff: may create organisations
	PersonID string // the person this user is (a worker), if any

	roles   map[string]store.Role // organisation → role
	carerOf map[string]bool       // people linked to a carer
	glass   map[string]string     // person → organisation of a live break-glass grant

	// TokenID is set when an API token authenticated the call; the token
	// reaches only TokenOrg with TokenPerms.
	TokenID    string
	TokenOrg   string
	TokenPerms []Permission

	// SessionHash identifies the browser session (nil for tokens).
	SessionHash []byte
	// MFA reports a completed second factor; without it only the sign-in
	// routes answer.
	MFA       bool
	MFAMethod string
}

// Actor is how the audit log and alert timelines name the principal: a
// user id, or "token:<id>".
func (p *Principal) Actor() string {
	if p == nil {
		return "anonymous"
	}
	if p.TokenID != "" {
		return "token:" + p.TokenID
	}
	return p.UserID
}

// Role returns the principal's role in org ("" when none).
func (p *Principal) Role(org string) store.Role {
	if p == nil || org == "" {
		return ""
	}
	if p.TokenID != "" {
		if org == p.TokenOrg {
			return "token"
		}
		return ""
	}
	return p.roles[org]
}

// Member reports whether the principal reaches org at all; objects of other
// organisations must look absent (404), not forbidden.
func (p *Principal) Member(org string) bool { return p.Role(org) != "" }

// Orgs lists the organisations the principal reaches, sorted.
func (p *Principal) Orgs() []string {
	if p == nil {
		return nil
	}
	if p.TokenID != "" {
		return []string{p.TokenOrg}
	}
	out := make([]string, 0, len(p.roles))
	for o := range p.roles {
		out = append(out, o)
	}
	sort.Strings(out)
	return out
}

// Can reports whether the principal has perm in org (before any limit to
// particular people; see SeesPerson).
func (p *Principal) Can(org string, perm Permission) bool {
	if p == nil || org == "" {
		return false
	}
	if p.TokenID != "" {
		return org == p.TokenOrg && slices.Contains(p.TokenPerms, perm)
	}
	r, ok := p.roles[org]
	return ok && RoleCan(r, perm)
}

// Scoped reports whether the principal sees only some people of org (a
// worker their own person, a carer the people linked to them).
func (p *Principal) Scoped(org string) bool {
	return p != nil && p.TokenID == "" && personScoped(p.roles[org])
}

// SeesPerson reports whether a person-scoped principal may see personID's
// objects in org; unscoped principals see everyone in their organisations.
func (p *Principal) SeesPerson(org, personID string) bool {
	if !p.Member(org) {
		return false
	}
	if !p.Scoped(org) {
		return true
	}
	switch p.roles[org] {
	case store.RoleWorker:
		return personID != "" && personID == p.PersonID
	case store.RoleCarer:
		return personID != "" && p.carerOf[personID]
	}
	return false
}

// People lists the people a scoped principal sees (nil when unscoped).
func (p *Principal) People(org string) []string {
	if !p.Scoped(org) {
		return nil
	}
	if p.roles[org] == store.RoleWorker {
		if p.PersonID == "" {
			return []string{}
		}
		return []string{p.PersonID}
	}
	out := make([]string, 0, len(p.carerOf))
	for id := range p.carerOf {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Decision is the outcome of an authorisation check.
type Decision int

// The decisions: allow, forbid (403: the caller sees the object but may
// not do this) and hide (404: the object is not theirs to know about).
const (
	Allow Decision = iota
	Forbid
	Hide
)

// Decide checks perm on an organisation-wide object of org (a zone, a
// policy, the organisation itself).
func (p *Principal) Decide(org string, perm Permission) Decision {
	if !p.Member(org) {
		return Hide
	}
	if !p.Can(org, perm) {
		return Forbid
	}
	return Allow
}

// DecideFor checks perm on an object of org that belongs to a person (an
// alert, a session, the person): a worker or carer not limited to that
// person does not learn it exists. personID "" (an alert of an unassigned
// device) is hidden from them too.
func (p *Principal) DecideFor(org, personID string, perm Permission) Decision {
	if !p.Member(org) {
		return Hide
	}
	if personID != "" && p.glass[personID] == org && slices.Contains(breakGlassGrants, perm) {
		return Allow
	}
	if p.Scoped(org) && !p.SeesPerson(org, personID) {
		return Hide
	}
	if !p.Can(org, perm) {
		return Forbid
	}
	return Allow
}

// BrokeGlass reports whether a live break-glass grant covers personID.
func (p *Principal) BrokeGlass(org, personID string) bool {
	return p != nil && personID != "" && p.glass[personID] == org && p.Member(org)
}

// NewPrincipal builds a user principal from their memberships (for tests
// and for Service).
func NewPrincipal(u store.User, ms []store.Membership, carerOf []string) *Principal {
	p := &Principal{UserID: u.ID, Email: u.Email, Name: u.Name, Provider: u.Provider, PersonID: u.PersonID,
		roles: make(map[string]store.Role, len(ms)), carerOf: make(map[string]bool, len(carerOf))}
	for _, m := range ms {
		p.roles[m.OrgID] = m.Role
	}
	for _, id := range carerOf {
		p.carerOf[id] = true
	}
	return p
}
