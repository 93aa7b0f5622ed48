package auth

import (
	"slices"

	"vigil/internal/store"
)

// Permission names one thing a caller may do inside an organisation. The
// whole meaning of every role is the table below: one place, walked by the
// authorisation matrix test in internal/web.
type Permission string

// The permissions.
const (
	AlertsRead    Permission = "alerts.read"
	AlertsRespond Permission = "alerts.respond" // acknowledge, resolve
	AlertsCancel  Permission = "alerts.cancel"  // the wearer's own cancel

	SessionsRead  Permission = "sessions.read"
	SessionsWrite Permission = "sessions.write" // start, check in, extend, end

	PresetsRead     Permission = "presets.read"
	PresetsWrite    Permission = "presets.write"
	EscalationRead  Permission = "escalation.read"
	EscalationWrite Permission = "escalation.write"
	FeedRead        Permission = "feed.read" // the organisation's live alert feed
	ReportsRead     Permission = "reports.read"
	ZonesRead       Permission = "zones.read"
	ZonesWrite      Permission = "zones.write"

	PeopleRead    Permission = "people.read"
	PeopleWrite   Permission = "people.write"
	MedicalRead   Permission = "people.medical" // a person's medical notes
	ContactsRead  Permission = "contacts.read"
	ContactsWrite Permission = "contacts.write"
	DevicesRead   Permission = "devices.read"
	DevicesWrite  Permission = "devices.write"

	UsersRead   Permission = "users.read"
	UsersWrite  Permission = "users.write" // add users, change roles, disable
	TeamsRead   Permission = "teams.read"
	TeamsWrite  Permission = "teams.write"
	TokensRead  Permission = "tokens.read"
	TokensWrite Permission = "tokens.write"
	AuditRead   Permission = "audit.read"
	OrgSettings Permission = "org.settings" // e.g. require WebAuthn
	// BreakGlass: in an emergency, read one person's details beyond what
	// the role shows, for a short time, with a reason; admins are told.
	BreakGlass Permission = "people.break_glass"
	// PeopleErase: erase a person (right to erasure): their data is
	// deleted or crypto-shredded everywhere; admins only.
	PeopleErase Permission = "people.erase"
	// PeopleExport: a subject access export, everything held about one
	// person (health context included); admins only.
	PeopleExport Permission = "people.export"
)

// breakGlassGrants is what a break-glass grant allows on its one person.
var breakGlassGrants = []Permission{PeopleRead, MedicalRead, ContactsRead, AlertsRead, SessionsRead}

// All is every permission, in a stable order.
var All = []Permission{
	AlertsRead, AlertsRespond, AlertsCancel, SessionsRead, SessionsWrite,
	PresetsRead, PresetsWrite, EscalationRead, EscalationWrite, FeedRead, ReportsRead, ZonesRead, ZonesWrite,
	PeopleRead, PeopleWrite, MedicalRead, ContactsRead, ContactsWrite, DevicesRead, DevicesWrite,
	UsersRead, UsersWrite, TeamsRead, TeamsWrite, TokensRead, TokensWrite, AuditRead, OrgSettings, BreakGlass,
	PeopleErase, PeopleExport,
}

// Roles is every role, in a stable order.
var Roles = []store.Role{
	store.RoleAdmin, store.RoleProvider, store.RoleSupervisor, store.RoleResponder,
	store.RoleAuditor, store.RoleWorker, store.RoleCarer,
}

// roleTable is what each role may do. Worker and carer permissions are
// further limited to their own person and the people linked to them (see
// Principal.SeesPerson).
var roleTable = map[store.Role][]Permission{
	store.RoleAdmin: All,
	// Provider staff run the service for the organisations assigned to
	// them: everything an admin does except reading health context and
	// the data-subject rights (erasure, export), which are the
	// organisation's own decisions as data controller.
	store.RoleProvider: without(All, MedicalRead, PeopleErase, PeopleExport),
	store.RoleSupervisor: {
		AlertsRead, AlertsRespond, SessionsRead, SessionsWrite, PresetsRead, EscalationRead, FeedRead,
		ReportsRead, ZonesRead, ZonesWrite, PeopleRead, MedicalRead, ContactsRead, DevicesRead, UsersRead, TeamsRead, BreakGlass,
	},
	store.RoleResponder: {
		AlertsRead, AlertsRespond, SessionsRead, FeedRead, ZonesRead, PeopleRead, MedicalRead, ContactsRead, BreakGlass,
	},
	store.RoleAuditor: {
		AlertsRead, SessionsRead, PresetsRead, EscalationRead, ReportsRead, ZonesRead, PeopleRead,
		DevicesRead, UsersRead, TeamsRead, TokensRead, AuditRead,
	},
	store.RoleWorker: {AlertsRead, AlertsCancel, SessionsRead, SessionsWrite, PresetsRead, PeopleRead, BreakGlass},
	store.RoleCarer:  {AlertsRead, PeopleRead},
}

// personScoped roles see only their own person (worker) or the people
// linked to them (carer).
func personScoped(r store.Role) bool { return r == store.RoleWorker || r == store.RoleCarer }

// RoleCan reports whether role r has permission p.
func RoleCan(r store.Role, p Permission) bool { return slices.Contains(roleTable[r], p) }

// RolePermissions returns a copy of what role r may do.
func RolePermissions(r store.Role) []Permission { return slices.Clone(roleTable[r]) }

// ValidRole reports whether r is a known role.
func ValidRole(r store.Role) bool { _, ok := roleTable[r]; return ok }

// ValidPermission reports whether p is a known permission.
func ValidPermission(p Permission) bool { return slices.Contains(All, p) }

func without(ps []Permission, drop ...Permission) []Permission {
	var out []Permission
	for _, p := range ps {
		if !slices.Contains(drop, p) {
			out = append(out, p)
		}
	}
	return out
}
