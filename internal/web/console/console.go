// Package console serves the supervisors' web console: server-rendered
// pages (html/template, parsed at start-up from go:embed), htmx for partial
// updates and static assets from the embedded static/ tree only.
//
// It signs people in with plain HTML forms over the same auth.Service and
// session cookie as the JSON API, shows an organisation's open alerts and
// acknowledges them; the live region re-renders on the API's server-sent
// event feed (GET /api/v1/orgs/{org}/feed) through static/console.js.
//
// Must not import: store drivers, the bus, gateways, app. Every page
// carries a strict CSP (no inline script or style); every state change is
// a POST behind http.CrossOriginProtection; every string from users and
// devices goes through html/template's escaping (no template.HTML).
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"vigil/internal/alert"
	"vigil/internal/audit"
	"vigil/internal/auth"
	"vigil/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CSP is the console pages' Content-Security-Policy: scripts, styles and
// connections from this origin only, nothing inline.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// downloadCSP is the CSP of answers that are not pages (static files,
// downloads): nothing may load or run in them.
const downloadCSP = "default-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// Cookie names, as the JSON API sets them (internal/web).
const (
	sessionCookie = "__Host-vigil_session"
	deviceCookie  = "__Host-vigil_device"
)

// Auth is what the console needs of the sign-in service (*auth.Service).
type Auth interface {
	Login(ctx context.Context, email, pw, ip, deviceCookie string) (auth.LoginResult, error)
	VerifyTOTP(ctx context.Context, p *auth.Principal, code, ip string) (string, error)
	Authenticate(ctx context.Context, token string) (*auth.Principal, error)
	Logout(ctx context.Context, p *auth.Principal, ip string) error
	DeviceCookieFor(p *auth.Principal) string
	Config() auth.Config
}

// Store is what the console reads; each page family adds its own part.
type Store interface {
	boardStore
	alertStore
	zonesStore
	adminStore
	reportsStore
	settingsStore
	accountStore

	GetAlert(ctx context.Context, id string) (store.Alert, error)
	ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	GetPerson(ctx context.Context, id string) (store.Person, error)
}

// Alerts is the part of the alert lifecycle the console drives.
type Alerts interface {
	Acknowledge(ctx context.Context, id, by, note string) (store.Alert, error)
}

// Auditor records personal-data reads and writes; an error means the
// page must not be served (fail closed, as the API does).
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Console is the web console's handlers.
type Console struct {
	auth   Auth
	st     Store
	alerts Alerts
	audit  Auditor
	api    http.Handler
	log    *slog.Logger
	csp    string
	tiles  string
	attrib string
	locks  lockTable // the locked console's credentials (board.go)

	tmpl   *template.Template
	static fs.FS
	hashes map[string]string // static file name → content hash (cache busting)
}

// Deps is what the console is built from.
type Deps struct {
	Auth   Auth
	Store  Store
	Alerts Alerts
	// Audit may be nil (no audit log).
	Audit Auditor
	// API is the JSON API's handler: console actions that change or read
	// more than the alarm list call it in-process as the signed-in user
	// (see apiCall), so the permission table, validation and audit are the
	// API's own.
	API http.Handler
	Log *slog.Logger
	// Tiles is the map tile URL template ({z}/{x}/{y}), "" for the
	// tile-less grid (the default: no third party learns where anyone is).
	Tiles string
	// Attribution is the tiles' attribution text.
	Attribution string
}

// New parses the templates and indexes the static assets; a template that
// does not parse is an error at start-up, not at the first request.
func New(d Deps) (*Console, error) {
	csp, err := cspFor(d.Tiles)
	if err != nil {
		return nil, err
	}
	c := &Console{auth: d.Auth, st: d.Store, alerts: d.Alerts, audit: d.Audit, api: d.API, log: d.Log,
		csp: csp, tiles: d.Tiles, attrib: d.Attribution, hashes: map[string]string{},
		locks: lockTable{m: map[[32]byte]lockEntry{}}}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("console: static assets: %w", err)
	}
	c.static = sub
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		c.hashes[p] = hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: static assets: %w", err)
	}
	c.tmpl, err = template.New("").Funcs(template.FuncMap{
		"asset":       c.assetURL,
		"when":        func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"tiles":       func() string { return c.tiles },
		"attribution": func() string { return c.attrib },
		"page":        page,
		"quarantineReason": func(r string) string {
			if s, ok := quarantineReasons[r]; ok {
				return s
			}
			return r
		},
	}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	return c, nil
}

// pageHead is the data of the "headx" template.
type pageHead struct {
	Title            string
	Map, Chart, Wall bool
	Wide             bool
	JS, CSS          []string
}

// page builds a pageHead from a title and flags: "map" (Leaflet and
// map.js), "chart" (uPlot), "wall" (wall-screen body class), "wide" (full
// width main), or a static file name ending in .js or .css.
func page(title string, flags ...string) pageHead {
	h := pageHead{Title: title}
	for _, f := range flags {
		switch {
		case f == "map":
			h.Map, h.Wide = true, true
		case f == "chart":
			h.Chart = true
		case f == "wall":
			h.Wall, h.Wide = true, true
		case f == "wide":
			h.Wide = true
		case strings.HasSuffix(f, ".js"):
			h.JS = append(h.JS, f)
		case strings.HasSuffix(f, ".css"):
			h.CSS = append(h.CSS, f)
		}
	}
	return h
}

// cspFor is the pages' CSP: CSP plus the tile server's origin in img-src
// when maps load tiles.
func cspFor(tiles string) (string, error) {
	if tiles == "" {
		return CSP, nil
	}
	u, err := url.Parse(strings.NewReplacer("{s}", "a", "{z}", "0", "{x}", "0", "{y}", "0", "{r}", "").Replace(tiles))
	if err != nil || u.Scheme != "https" || u.Host == "" || strings.ContainsAny(u.Host, " ;,'*") {
		return "", fmt.Errorf("console: tile URL must be an https URL template such as https://tile.example.org/{z}/{x}/{y}.png")
	}
	host := u.Host
	if strings.Contains(tiles, "{s}.") {
		host = "*." + strings.SplitN(u.Host, ".", 2)[1]
	}
	return strings.Replace(CSP, "img-src 'self' data:", "img-src 'self' data: https://"+host, 1), nil
}

// assetURL is a static file's URL with its content hash, so that the file
// can be cached as immutable.
func (c *Console) assetURL(name string) (string, error) {
	h, ok := c.hashes[name]
	if !ok {
		return "", fmt.Errorf("console: no static asset %q", name)
	}
	return "/static/" + name + "?v=" + h, nil
}

// route is one entry of the console's allowlist. Public routes answer
// without a session; every other one needs a signed-in session (the
// handler checks it), and every POST passes CrossOriginProtection.
type route struct {
	pattern string
	public  bool
	handler func(c *Console) http.HandlerFunc
}

// routes is every console route; Register serves these and nothing else
// (any other path under /console/ is a 404 page). Each page family keeps
// its own table next to its handlers.
var routes = slices.Concat(coreRoutes, boardRoutes, alertRoutes, zoneRoutes, adminRoutes, reportRoutes, settingsRoutes, accountRoutes)

var coreRoutes = []route{
	{"GET /{$}", true, func(c *Console) http.HandlerFunc { return c.home }},
	{"GET /static/", true, func(c *Console) http.HandlerFunc { return c.serveStatic }},
	{"POST /console/login", true, func(c *Console) http.HandlerFunc { return c.login }},
	{"POST /console/totp", false, func(c *Console) http.HandlerFunc { return c.totp }},
	{"POST /console/logout", false, func(c *Console) http.HandlerFunc { return c.logout }},
	{"GET /console/{org}", false, func(c *Console) http.HandlerFunc { return c.orgPage }},
	{"GET /console/{org}/alerts", false, func(c *Console) http.HandlerFunc { return c.alertsFragment }},
	{"POST /console/{org}/alerts/{id}/acknowledge", false, func(c *Console) http.HandlerFunc { return c.acknowledge }},
}

// Register adds the console's routes to mux: the sign-in page at /, the
// static assets, the organisation pages under /console/. POSTs are
// refused from other origins (CSRF).
func (c *Console) Register(mux *http.ServeMux) {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, http.StatusForbidden, "This request came from another site and was refused.")
	}))
	for _, rt := range routes {
		var h http.Handler = rt.handler(c)
		if strings.HasPrefix(rt.pattern, "POST ") {
			h = cop.Handler(h)
		}
		mux.Handle(rt.pattern, h)
	}
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, http.StatusNotFound, "No such page.")
	})
}

// serveStatic serves an embedded asset: immutable when the URL carries
// its current hash, revalidated otherwise.
func (c *Console) serveStatic(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	ctype := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
		".svg": "image/svg+xml", ".png": "image/png"}[path.Ext(name)]
	h, ok := c.hashes[name]
	if !ok || ctype == "" || !fs.ValidPath(name) {
		c.errorPage(w, r, http.StatusNotFound, "No such file.")
		return
	}
	b, err := fs.ReadFile(c.static, name)
	if err != nil {
		c.errorPage(w, r, http.StatusNotFound, "No such file.")
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", ctype)
	hd.Set("Content-Security-Policy", downloadCSP)
	if r.URL.Query().Get("v") == h {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	hd.Set("ETag", `"`+h+`"`)
	if r.Header.Get("If-None-Match") == `"`+h+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// principal is the signed-in caller, or nil. A store failure is logged
// and treated as signed out (the page then offers to sign in again).
func (c *Console) principal(r *http.Request) *auth.Principal {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	p, err := c.auth.Authenticate(r.Context(), ck.Value)
	if err != nil {
		if !errors.Is(err, auth.ErrUnauthenticated) {
			c.log.Error("console: authenticate", "err", err)
		}
		return nil
	}
	return p
}

// signinView is the sign-in page's data.
type signinView struct {
	Step  string // "password" or "code"
	Email string
	Error string
	// The second step's choices (see offers): an authenticator-app code,
	// a passkey (static/webauthn.js), a one-time recovery code.
	OfferTOTP, OfferPasskey, OfferRecovery bool
	RecoveryError                          string // next to the recovery code field
}

type orgsView struct {
	Name string
	Orgs []string
}

// home is the sign-in page until both factors are done, then the list of
// the caller's organisations.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	p := c.principal(r)
	switch {
	case p == nil:
		c.render(w, http.StatusOK, "signin.html", signinView{Step: "password"})
	case !p.MFA:
		// The factors the user has, or the enrolment page for one who
		// has none yet.
		c.codeStep(w, r, p, http.StatusOK, signinView{})
	default:
		var orgs []string
		for _, o := range p.Orgs() {
			if p.Can(o, auth.AlertsRead) && !p.Scoped(o) {
				orgs = append(orgs, o)
			}
		}
		c.render(w, http.StatusOK, "orgs.html", orgsView{Name: p.Name, Orgs: orgs})
	}
}

// form parses a small urlencoded body.
func form(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	return r.ParseForm() == nil
}

// signinError is the page text and status for an auth error; ok false for
// an unexpected one (logged, 500).
func signinError(err error) (int, string, bool) {
	var th *auth.Throttled
	switch {
	case errors.As(err, &th):
		return http.StatusTooManyRequests, "Too many attempts. Wait a little and try again.", true
	case errors.Is(err, auth.ErrBadCredentials):
		return http.StatusUnauthorized, "Wrong e-mail or password.", true
	case errors.Is(err, auth.ErrBadCode):
		return http.StatusUnauthorized, "Wrong or already used code. Enter the current code from your app.", true
	case errors.Is(err, auth.ErrNotEnrolled):
		return http.StatusConflict, "You have no authenticator app yet: enrol one first (see docs/access.md).", true
	case errors.Is(err, auth.ErrWebAuthnOnly):
		return http.StatusForbidden, "Your organisation requires a passkey or security key: use it below.", true
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized, "Your sign-in expired. Start again.", true
	}
	return 0, "", false
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !form(w, r) {
		c.render(w, http.StatusBadRequest, "signin.html", signinView{Step: "password", Error: "The form could not be read."})
		return
	}
	email := r.PostFormValue("email")
	dev := ""
	if ck, err := r.Cookie(deviceCookie); err == nil {
		dev = ck.Value
	}
	res, err := c.auth.Login(r.Context(), email, r.PostFormValue("password"), clientIP(r), dev)
	if err != nil {
		code, msg, ok := signinError(err)
		if !ok {
			c.fail(w, r, err)
			return
		}
		if code == http.StatusTooManyRequests {
			var th *auth.Throttled
			errors.As(err, &th)
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(th.RetryAfter.Round(time.Second)/time.Second))))
		}
		c.render(w, code, "signin.html", signinView{Step: "password", Email: email, Error: msg})
		return
	}
	// A new session id on sign-in: a session sent before is void.
	if p := c.principal(r); p != nil {
		_ = c.auth.Logout(r.Context(), p, clientIP(r))
	}
	c.setSession(w, res.Token)
	if res.MustEnrol {
		// No second factor yet: set one up before anything else.
		http.Redirect(w, r, "/console/enrol", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) totp(w http.ResponseWriter, r *http.Request) {
	p := c.principal(r)
	if p == nil {
		c.render(w, http.StatusUnauthorized, "signin.html", signinView{Step: "password", Error: "Your sign-in expired. Start again."})
		return
	}
	if !form(w, r) {
		c.codeStep(w, r, p, http.StatusBadRequest, signinView{Error: "The form could not be read."})
		return
	}
	tok, err := c.auth.VerifyTOTP(r.Context(), p, strings.TrimSpace(r.PostFormValue("code")), clientIP(r))
	if err != nil {
		code, msg, ok := signinError(err)
		if !ok {
			c.fail(w, r, err)
			return
		}
		c.codeStep(w, r, p, code, signinView{Error: msg})
		return
	}
	c.setSession(w, tok)
	if dc := c.auth.DeviceCookieFor(p); dc != "" {
		http.SetCookie(w, &http.Cookie{Name: deviceCookie, Value: dc, Path: "/", Secure: true, HttpOnly: true,
			SameSite: http.SameSiteStrictMode, MaxAge: 90 * 24 * 3600})
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if p := c.principal(r); p != nil {
		if err := c.auth.Logout(r.Context(), p, clientIP(r)); err != nil {
			c.fail(w, r, err)
			return
		}
	}
	c.endLock(w, r) // a signed-out console is not a locked one
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) setSession(w http.ResponseWriter, tok string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.auth.Config().MaxLifetime / time.Second)})
}

// alertRow is one alert as the list shows it.
type alertRow struct {
	ID         string
	Kind       string
	Severity   string
	Duress     bool
	PersonID   string
	PersonName string
	DeviceID   string
	RaisedAt   time.Time
	State      string
	CanAck     bool
}

type alertsView struct {
	Nav    Nav
	Org    string
	User   string
	Live   bool // the caller may follow the live feed (feed.read)
	Alerts []alertRow
	Notice string
}

// orgAccess signs in and checks the caller may watch org's alarms: 404
// for an organisation they do not reach, 403 without alerts.read or when
// limited to some people (the console is for staff who see everyone).
func (c *Console) orgAccess(w http.ResponseWriter, r *http.Request, fragment bool) (*auth.Principal, string, bool) {
	p := c.principal(r)
	if p == nil || !p.MFA {
		if fragment {
			// htmx follows this to the sign-in page.
			w.Header().Set("HX-Redirect", "/")
			c.errorPage(w, r, http.StatusUnauthorized, "Sign in again.")
		} else {
			http.Redirect(w, r, "/", http.StatusSeeOther)
		}
		return nil, "", false
	}
	org := r.PathValue("org")
	d := p.Decide(org, auth.AlertsRead)
	if d == auth.Allow && p.Scoped(org) {
		d = auth.Forbid
	}
	if !c.decided(w, r, p, d, org, auth.AlertsRead, "org", org) {
		return nil, "", false
	}
	return p, org, true
}

// decided answers a denial (404 hide, 403 forbid, recorded in the audit
// log) and reports whether the request may go on.
func (c *Console) decided(w http.ResponseWriter, r *http.Request, p *auth.Principal, d auth.Decision, org string, perm auth.Permission, objType, objID string) bool {
	if d == auth.Allow {
		return true
	}
	if c.audit != nil {
		_ = c.audit.Record(r.Context(), audit.Entry{OrgID: org, Actor: p.Actor(), SourceIP: clientIP(r), Action: "authz.denied",
			ObjectType: objType, ObjectID: objID, Outcome: "denied", Severity: "warning",
			Details: map[string]string{"permission": string(perm), "route": r.Pattern}})
	}
	if d == auth.Forbid {
		c.errorPage(w, r, http.StatusForbidden, "Your role does not allow this.")
	} else {
		c.errorPage(w, r, http.StatusNotFound, "No such page.")
	}
	return false
}

// audited records a personal-data read or change before it is served; the
// audit log unavailable answers 503.
func (c *Console) audited(w http.ResponseWriter, r *http.Request, p *auth.Principal, org, action, objType, objID string) bool {
	if c.audit == nil {
		return true
	}
	err := c.audit.Record(r.Context(), audit.Entry{OrgID: org, Actor: p.Actor(), SourceIP: clientIP(r), Action: action,
		ObjectType: objType, ObjectID: objID, Outcome: "ok", Severity: "info", Details: map[string]string{"via": "console"}})
	if err != nil {
		c.log.Error("audit log unavailable; personal data not served", "action", action, "err", err)
		c.errorPage(w, r, http.StatusServiceUnavailable, "The audit log is unavailable; try again shortly.")
		return false
	}
	return true
}

// view loads org's open alerts for p.
func (c *Console) view(ctx context.Context, p *auth.Principal, org string) (alertsView, error) {
	list, err := c.st.ListAlerts(ctx, store.AlertFilter{OrgID: org,
		States: []store.AlertState{store.AlertPending, store.AlertRaised, store.AlertAcknowledged}, Limit: 200})
	if err != nil {
		return alertsView{}, fmt.Errorf("list alerts of %s: %w", org, err)
	}
	names := map[string]string{}
	v := alertsView{Nav: nav(p, org, "alarms"), Org: org, User: p.Name, Live: p.Can(org, auth.FeedRead), Alerts: make([]alertRow, 0, len(list))}
	for _, al := range list {
		name, seen := names[al.PersonID]
		if !seen && al.PersonID != "" {
			if pr, err := c.st.GetPerson(ctx, al.PersonID); err == nil && pr.OrgID == org {
				name = pr.Name
			}
			names[al.PersonID] = name
		}
		v.Alerts = append(v.Alerts, alertRow{ID: al.ID, Kind: al.Kind, Severity: al.Severity, Duress: al.Duress,
			PersonID: al.PersonID, PersonName: name, DeviceID: al.DeviceID, RaisedAt: al.RaisedAt, State: string(al.State),
			CanAck: al.State == store.AlertRaised && p.DecideFor(org, al.PersonID, auth.AlertsRespond) == auth.Allow})
	}
	return v, nil
}

func (c *Console) orgPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.orgAccess(w, r, false)
	if !ok || !c.audited(w, r, p, org, "alert.list", "alerts", "") {
		return
	}
	v, err := c.view(r.Context(), p, org)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, http.StatusOK, "alerts.html", v)
}

func (c *Console) alertsFragment(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.orgAccess(w, r, true)
	if !ok || !c.audited(w, r, p, org, "alert.list", "alerts", "") {
		return
	}
	v, err := c.view(r.Context(), p, org)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, http.StatusOK, "alert-list", v)
}

// acknowledge is the Acknowledge button: the alerts.respond permission on
// the alert's organisation and person, as POST
// /api/v1/alerts/{id}/acknowledge checks it. From htmx it answers the
// refreshed list; from a plain form, a redirect to the page.
func (c *Console) acknowledge(w http.ResponseWriter, r *http.Request) {
	p := c.principal(r)
	if p == nil || !p.MFA {
		c.errorPage(w, r, http.StatusUnauthorized, "Sign in again.")
		return
	}
	org := r.PathValue("org")
	al, err := c.st.GetAlert(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && al.OrgID != org) {
		c.decided(w, r, p, auth.Hide, org, auth.AlertsRespond, "alert", r.PathValue("id"))
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if !c.decided(w, r, p, p.DecideFor(al.OrgID, al.PersonID, auth.AlertsRespond), al.OrgID, auth.AlertsRespond, "alert", al.ID) ||
		!c.audited(w, r, p, al.OrgID, "alert.acknowledge", "alert", al.ID) {
		return
	}
	notice := ""
	if _, err := c.alerts.Acknowledge(r.Context(), al.ID, p.Actor(), ""); errors.Is(err, alert.ErrIllegal) {
		notice = "That alert was already acknowledged or closed."
	} else if err != nil {
		c.fail(w, r, err)
		return
	}
	if r.Header.Get("HX-Request") != "true" {
		http.Redirect(w, r, "/console/"+org, http.StatusSeeOther)
		return
	}
	v, err := c.view(r.Context(), p, org)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v.Notice = notice
	c.render(w, http.StatusOK, "alert-list", v)
}

// render executes a template into a buffer first, so that a template
// error becomes a clean 500 instead of half a page.
func (c *Console) render(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := c.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		c.log.Error("console: render", "template", name, "err", err)
		status, b = http.StatusInternalServerError, strings.Builder{}
		b.WriteString("<!doctype html><title>Error</title><p>Internal error.</p>\n")
	}
	// A fresh nonce per answer on every script tag, and 'strict-dynamic':
	// a script only runs if this answer named it (security requirement
	// 26). Templates write only "<script src=" (TestNoInlineScript);
	// user text cannot, since html/template escapes "<".
	nonce := scriptNonce()
	out := strings.ReplaceAll(b.String(), "<script src=", `<script nonce="`+nonce+`" src=`)
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", strings.Replace(c.csp, "script-src 'self'", "script-src 'self' 'nonce-"+nonce+"' 'strict-dynamic'", 1))
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(out))
}

// scriptNonce is 128 random bits, base64.
func scriptNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

type errorView struct {
	Status  int
	Message string
}

func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, status, "error.html", errorView{Status: status, Message: msg})
}

// fail answers an unexpected error: the chain goes to the log, the page
// says only that something went wrong.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Error("console: request failed", "method", r.Method, "pattern", r.Pattern, "err", err)
	c.errorPage(w, r, http.StatusInternalServerError, "Something went wrong. Try again.")
}

// clientIP is the peer address (never a forwarded header).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
