package console

import "vigil/internal/auth"

// RouteInfo is one console route as the authorisation walk sees it.
type RouteInfo struct {
	Pattern string
	Public  bool
	// Perms are the permissions the route needs in the path's
	// organisation, all of them (none for routes outside an organisation:
	// sign-in, one's account). Organisation pages are for staff who see
	// the whole organisation; person-scoped roles reach only an alert of
	// their own person.
	Perms []auth.Permission
}

// Routes lists every console route with the permission it needs; the
// authorisation walk in internal/app requests each for every role.
func Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(routes))
	for _, rt := range routes {
		ri := RouteInfo{Pattern: rt.pattern, Public: rt.public}
		if p := routePerms[rt.pattern]; p != "" {
			ri.Perms = append(ri.Perms, p)
		}
		if p := alsoNeeds[rt.pattern]; p != "" {
			ri.Perms = append(ri.Perms, p)
		}
		out = append(out, ri)
	}
	return out
}

// alsoNeeds is a second permission some routes need: changing medical
// notes needs people.write and people.medical.
var alsoNeeds = map[string]auth.Permission{
	"POST /console/{org}/people/{id}/notes": auth.MedicalRead,
}

// routePerms is the console's permission table, one place: what each
// organisation route needs (the handlers check it, through the API or
// themselves). TestRoutePermsComplete fails for a route under
// /console/{org} without an entry.
var routePerms = map[string]auth.Permission{
	"GET /console/{org}":                                        auth.AlertsRead,
	"GET /console/{org}/alerts":                                 auth.AlertsRead,
	"POST /console/{org}/alerts/{id}/acknowledge":               auth.AlertsRespond,
	"GET /console/{org}/alerts/{id}":                            auth.AlertsRead,
	"GET /console/{org}/alerts/{id}/live":                       auth.AlertsRead,
	"POST /console/{org}/alerts/{id}/ack":                       auth.AlertsRespond,
	"POST /console/{org}/alerts/{id}/note":                      auth.AlertsRespond,
	"POST /console/{org}/alerts/{id}/resolve":                   auth.AlertsRespond,
	"GET /console/{org}/board":                                  auth.AlertsRead,
	"GET /console/{org}/wall":                                   auth.AlertsRead,
	"GET /console/{org}/board/queue":                            auth.AlertsRead,
	"GET /console/{org}/board/sessions":                         auth.AlertsRead,
	"GET /console/{org}/board/positions":                        auth.AlertsRead,
	"GET /console/{org}/locked/alarms":                          "", // the lock credential, not a session: board tests
	"GET /console/{org}/devices":                                auth.DevicesRead,
	"GET /console/{org}/devices/new":                            auth.DevicesWrite,
	"POST /console/{org}/devices":                               auth.DevicesWrite,
	"POST /console/{org}/devices/{id}/enrol-token":              auth.DevicesWrite,
	"POST /console/{org}/devices/{id}/revoke":                   auth.DevicesWrite,
	"POST /console/{org}/devices/{id}/release":                  auth.DevicesWrite,
	"GET /console/{org}/people":                                 auth.PeopleRead,
	"POST /console/{org}/people":                                auth.PeopleWrite,
	"GET /console/{org}/people/{id}":                            auth.PeopleRead,
	"POST /console/{org}/people/{id}/notes":                     auth.PeopleWrite,
	"POST /console/{org}/people/{id}/contacts":                  auth.ContactsWrite,
	"POST /console/{org}/people/{id}/contacts/{contact}/delete": auth.ContactsWrite,
	"POST /console/{org}/people/{id}/carers":                    auth.UsersWrite,
	"POST /console/{org}/people/{id}/carers/{user}/delete":      auth.UsersWrite,
	"POST /console/{org}/people/{id}/device":                    auth.DevicesWrite,
	"GET /console/{org}/people/{id}/photo":                      auth.PeopleRead,
	"POST /console/{org}/people/{id}/photo":                     auth.PeopleWrite,
	"POST /console/{org}/people/{id}/photo/delete":              auth.PeopleWrite,
	"GET /console/{org}/alerts/{id}/photo":                      auth.AlertsRead,
	"GET /console/{org}/teams":                                  auth.TeamsRead,
	"POST /console/{org}/teams":                                 auth.TeamsWrite,
	"POST /console/{org}/teams/{id}/delete":                     auth.TeamsWrite,
	"POST /console/{org}/teams/{id}/members":                    auth.TeamsWrite,
	"POST /console/{org}/teams/{id}/members/{user}/delete":      auth.TeamsWrite,
	"GET /console/{org}/reports":                                auth.ReportsRead,
	"GET /console/{org}/reports/data":                           auth.ReportsRead,
	"GET /console/{org}/reports/csv":                            auth.ReportsRead,
	"GET /console/{org}/audit":                                  auth.AuditRead,
	"GET /console/{org}/users":                                  auth.UsersRead,
	"POST /console/{org}/users":                                 auth.UsersWrite,
	"POST /console/{org}/users/{id}/role":                       auth.UsersWrite,
	"POST /console/{org}/users/{id}/disable":                    auth.UsersWrite,
	"POST /console/{org}/users/{id}/enable":                     auth.UsersWrite,
	"POST /console/{org}/users/{id}/remove":                     auth.UsersWrite,
	"GET /console/{org}/settings":                               auth.OrgSettings,
	"POST /console/{org}/settings":                              auth.OrgSettings,
	"GET /console/{org}/tokens":                                 auth.TokensRead,
	"POST /console/{org}/tokens":                                auth.TokensWrite,
	"POST /console/{org}/tokens/{id}/revoke":                    auth.TokensWrite,
	"GET /console/{org}/policies":                               auth.EscalationRead,
	"POST /console/{org}/policies/{kind}":                       auth.EscalationWrite,
	"GET /console/{org}/presets":                                auth.PresetsRead,
	"POST /console/{org}/presets":                               auth.PresetsWrite,
	"GET /console/{org}/zones":                                  auth.ZonesRead,
	"GET /console/{org}/zones/export":                           auth.ZonesRead,
	"POST /console/{org}/zones":                                 auth.ZonesWrite,
	"POST /console/{org}/zones/import":                          auth.ZonesWrite,
	"POST /console/{org}/zones/{id}/delete":                     auth.ZonesWrite,
}
