package console

import "vigil/internal/auth"

// navItem is one link of an organisation's console menu.
type navItem struct {
	Key   string // page family, marks the current page
	Label string
	Path  string // under /console/{org}
	Perm  auth.Permission
}

// navItems is the organisation menu, in order. A link shows only when the
// caller holds its permission unscoped (the pages check it again).
var navItems = []navItem{
	{"board", "Board", "/board", auth.AlertsRead},
	{"alarms", "Alarms", "", auth.AlertsRead},
	{"zones", "Zones", "/zones", auth.ZonesRead},
	{"people", "People", "/people", auth.PeopleRead},
	{"devices", "Devices", "/devices", auth.DevicesRead},
	{"teams", "Teams", "/teams", auth.TeamsRead},
	{"users", "Users", "/users", auth.UsersRead},
	{"tokens", "API tokens", "/tokens", auth.TokensRead},
	{"policies", "Escalation", "/policies", auth.EscalationRead},
	{"presets", "Session presets", "/presets", auth.PresetsRead},
	{"reports", "Reports", "/reports", auth.ReportsRead},
	{"audit", "Audit log", "/audit", auth.AuditRead},
}

// Nav is the menu a page renders with {{template "nav" .Nav}}.
type Nav struct {
	Org     string
	User    string
	Current string
	Links   []NavLink
}

// NavLink is one shown link.
type NavLink struct {
	Label   string
	Href    string
	Current bool
}

// nav is org's menu for p with current marked.
func nav(p *auth.Principal, org, current string) Nav {
	n := Nav{Org: org, User: p.Name, Current: current}
	for _, it := range navItems {
		if p.Can(org, it.Perm) && !p.Scoped(org) {
			n.Links = append(n.Links, NavLink{Label: it.Label, Href: "/console/" + org + it.Path, Current: it.Key == current})
		}
	}
	return n
}
