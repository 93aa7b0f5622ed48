package console

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"vigil/internal/event"
	"vigil/internal/store"
)

// boardFake adds what the board reads to the package's fake store.
type boardFake struct {
	*fakeStore
	devices  []store.Device
	sessions []store.Session
	people   []store.Person
	users    map[string]store.User
	members  map[string][]store.Membership
}

func (s *boardFake) ListDevices(_ context.Context, org string) ([]store.Device, error) {
	var out []store.Device
	for _, d := range s.devices {
		if d.OrgID == org {
			out = append(out, d)
		}
	}
	return out, nil
}

func (s *boardFake) ListSessions(_ context.Context, f store.SessionFilter) ([]store.Session, error) {
	var out []store.Session
	for _, x := range s.sessions {
		if x.OrgID == f.OrgID && (!f.ActiveOnly || x.State == store.SessionActive) {
			out = append(out, x)
		}
	}
	return out, nil
}

func (s *boardFake) ListPeople(_ context.Context, org string) ([]store.Person, error) {
	var out []store.Person
	for _, p := range s.people {
		if p.OrgID == org {
			out = append(out, p)
		}
	}
	return out, nil
}

func (s *boardFake) GetUser(_ context.Context, id string) (store.User, error) {
	if u, ok := s.users[id]; ok {
		return u, nil
	}
	return store.User{}, store.ErrNotFound
}

func (s *boardFake) ListMemberships(_ context.Context, id string) ([]store.Membership, error) {
	return s.members[id], nil
}

func (s *boardFake) GetWebSession(context.Context, []byte) (store.WebSession, error) {
	return store.WebSession{}, store.ErrNotFound
}

// newBoardWorld is newWorld with the board's data: worker p1 (in alarm,
// al_1) on a session whose check-in is due, resident r1 with a low
// battery, worker p2 on duty and offline, worker p3 off duty.
func newBoardWorld(t *testing.T) (*world, *boardFake, *Console) {
	t.Helper()
	w := newWorld(t)
	now := time.Now()
	bat := func(n int) *int { return &n }
	pos := &event.Position{Lat: 51.5, Lon: -0.1, AccuracyM: 12}
	bf := &boardFake{fakeStore: w.st,
		people: []store.Person{{ID: "p1", OrgID: "acme", Kind: store.PersonWorker, Name: xss},
			{ID: "r1", OrgID: "acme", Kind: store.PersonResident, Name: "Rita"},
			{ID: "p2", OrgID: "acme", Kind: store.PersonWorker, Name: "Pat"},
			{ID: "p3", OrgID: "acme", Kind: store.PersonWorker, Name: "Off Duty"}},
		devices: []store.Device{
			{ID: "d1", OrgID: "acme", PersonID: "p1", State: store.DeviceState{LastSeen: now, LastPosition: pos, Battery: bat(90)}},
			{ID: "d2", OrgID: "acme", PersonID: "r1", State: store.DeviceState{LastSeen: now, LastPosition: pos, Battery: bat(10)}},
			{ID: "d3", OrgID: "acme", PersonID: "p2", State: store.DeviceState{LastSeen: now.Add(-time.Hour), LastPosition: pos}},
			{ID: "d4", OrgID: "acme", PersonID: "p3", State: store.DeviceState{LastSeen: now, LastPosition: pos}},
			{ID: "d5", OrgID: "acme", PersonID: "r1"}, // no position
		},
		sessions: []store.Session{
			{ID: "s1", OrgID: "acme", PersonID: "p1", Preset: "high risk", Note: `"><svg onload=alert(1)>`, StartedAt: now.Add(-10 * time.Minute),
				ExpectedEnd: now.Add(time.Hour), CheckinInterval: 15 * time.Minute, LastCheckin: now.Add(-10 * time.Minute), State: store.SessionActive},
			{ID: "s2", OrgID: "acme", PersonID: "p2", StartedAt: now.Add(-2 * time.Hour), ExpectedEnd: now.Add(-time.Minute), State: store.SessionActive},
		},
		users:   map[string]store.User{"u-supervisor": {ID: "u-supervisor", Name: "Sue"}},
		members: map[string][]store.Membership{"u-supervisor": {{UserID: "u-supervisor", OrgID: "acme", Role: store.RoleSupervisor}}},
	}
	c, err := New(Deps{Auth: w.auth, Store: bf, Alerts: w.alerts, Audit: w.audit, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	w.h = mux
	return w, bf, c
}

func lockCookieOf(t *testing.T, r resp) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: r.hdr}).Cookies() {
		if c.Name == lockCookie {
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge <= 0 || c.MaxAge > 3600 {
				t.Errorf("lock cookie %+v", c)
			}
			if len(c.Value) < 22 {
				t.Errorf("lock token %q is shorter than 128 bits", c.Value)
			}
			return c
		}
	}
	t.Fatalf("no lock cookie in %v", r.hdr)
	return nil
}

// withLock sends a request with only the lock cookie.
func (w *world) withLock(t *testing.T, target string, ck *http.Cookie) resp {
	t.Helper()
	return w.do(t, "GET", target, "", nil, "Cookie", lockCookie+"="+ck.Value)
}

func TestBoardPage(t *testing.T) {
	w, _, _ := newBoardWorld(t)
	tok := w.auth.session("acme", store.RoleSupervisor, true)
	r := w.do(t, "GET", "/console/acme/board", tok, nil)
	if r.code != 200 {
		t.Fatalf("board: %d %s", r.code, r.body)
	}
	checkPage(t, "board", r)
	lockCookieOf(t, r)
	for _, want := range []string{
		`id="board-map"`, `data-feed="/api/v1/orgs/acme/feed"`, `data-queue="/console/acme/board/queue"`,
		`href="/console/acme/alerts/al_1"`, `hx-post="/console/acme/alerts/al_1/acknowledge"`,
		`&lt;img src=x onerror=alert(1)&gt;`, `&#34;&gt;&lt;svg onload=alert(1)&gt;`, `class="countdown" data-due="`,
		`Click to enable sound`, `Console locked — sign in to see details`, `aria-current="page"`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("board lacks %q", want)
		}
	}
	if strings.Contains(r.body, xss) || strings.Contains(r.body, "<svg") {
		t.Error("hostile text rendered unescaped")
	}
	// Critical first.
	if i, j := strings.Index(r.body, `id="queue-al_1"`), strings.Index(r.body, `id="queue-al_2"`); i < 0 || j < 0 || i > j {
		t.Errorf("queue order: al_1 at %d, al_2 at %d", i, j)
	}
	// The acknowledged alert has no button; the overdue session is marked.
	if strings.Contains(r.body, "al_2/acknowledge") || !strings.Contains(r.body, `id="session-s2" class="overdue"`) {
		t.Error("queue buttons or overdue session wrong")
	}
	if n := len(w.audit.entries); n == 0 || w.audit.entries[n-1].Action != "board.view" {
		t.Errorf("audit: %+v", w.audit.entries)
	}

	r = w.do(t, "GET", "/console/acme/board/positions", tok, nil)
	var pos struct {
		Markers []boardMarker `json:"markers"`
	}
	if r.code != 200 || json.Unmarshal([]byte(r.body), &pos) != nil {
		t.Fatalf("positions: %d %s", r.code, r.body)
	}
	got := map[string]string{}
	for _, m := range pos.Markers {
		got[m.ID] = m.State + " " + m.Label
	}
	want := map[string]string{"d1": "alarm " + xss, "d2": "low_battery Rita", "d3": "overdue Pat"}
	if len(got) != len(want) {
		t.Errorf("markers %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("marker %s: %q, want %q", k, got[k], v)
		}
	}

	for _, p := range []string{"/console/acme/board/queue", "/console/acme/board/sessions"} {
		r = w.do(t, "GET", p, tok, nil, "HX-Request", "true")
		if r.code != 200 || strings.Contains(r.body, "<html") || strings.Contains(r.body, xss) {
			t.Errorf("%s: %d %s", p, r.code, r.body)
		}
	}
}

func TestWallPage(t *testing.T) {
	w, _, _ := newBoardWorld(t)
	tok := w.auth.session("acme", store.RoleAdmin, true)
	r := w.do(t, "GET", "/console/acme/wall", tok, nil)
	if r.code != 200 {
		t.Fatalf("wall: %d %s", r.code, r.body)
	}
	checkPage(t, "wall", r)
	lockCookieOf(t, r)
	if !strings.Contains(r.body, `<body class="wall">`) || !strings.Contains(r.body, `id="queue-al_1"`) {
		t.Error("wall without its class or queue")
	}
	for _, bad := range []string{"nav class=\"menu\"", "/acknowledge", "/console/acme/people", "board-sessions", "Sign out"} {
		if strings.Contains(r.body, bad) {
			t.Errorf("wall shows %q", bad)
		}
	}
	r = w.do(t, "GET", "/console/acme/board/queue?wall=1", tok, nil)
	if r.code != 200 || strings.Contains(r.body, "/acknowledge") {
		t.Errorf("wall queue: %d %s", r.code, r.body)
	}
}

func TestBoardAccess(t *testing.T) {
	w, _, _ := newBoardWorld(t)
	for _, p := range []string{"/console/acme/board/queue", "/console/acme/board/sessions", "/console/acme/board/positions"} {
		r := w.do(t, "GET", p, "", nil, "HX-Request", "true")
		if r.code != 401 || r.hdr.Get("HX-Redirect") != "" {
			t.Errorf("%s without a session: %d %v, want a bare 401 (the board locks)", p, r.code, r.hdr)
		}
	}
	if r := w.do(t, "GET", "/console/acme/board", "", nil); r.code != 303 {
		t.Errorf("board without a session: %d", r.code)
	}
	worker := w.auth.session("acme", store.RoleWorker, true)
	for _, p := range []string{"/console/acme/board", "/console/acme/wall", "/console/acme/board/positions"} {
		if r := w.do(t, "GET", p, worker, nil); r.code != 403 || strings.Contains(r.body, "Rita") {
			t.Errorf("worker %s: %d", p, r.code)
		}
	}
	other := w.auth.session("other", store.RoleAdmin, true)
	if r := w.do(t, "GET", "/console/acme/board", other, nil); r.code != 404 || len(r.hdr.Values("Set-Cookie")) != 0 {
		t.Errorf("another organisation's admin: %d %v", r.code, r.hdr)
	}
}

func TestLockedAlarms(t *testing.T) {
	w, bf, _ := newBoardWorld(t)
	tok := w.auth.session("acme", store.RoleSupervisor, true)
	ck := lockCookieOf(t, w.do(t, "GET", "/console/acme/board", tok, nil))

	r := w.withLock(t, "/console/acme/locked/alarms", ck)
	if r.code != 200 || r.hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("locked alarms: %d %s", r.code, r.body)
	}
	var got struct {
		Count  int              `json:"count"`
		Alarms []map[string]any `json:"alarms"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || got.Count != 2 || len(got.Alarms) != 2 {
		t.Fatalf("locked alarms: %s (%v)", r.body, err)
	}
	for _, a := range got.Alarms {
		if len(a) != 4 || a["kind"] == nil || a["severity"] == nil || a["state"] == nil || a["raised_at"] == nil {
			t.Errorf("alarm %v: want only kind, severity, state, raised_at", a)
		}
	}
	for _, secret := range []string{"p1", "d1", "al_1", "Rita", "Sue", "51.5", "high risk"} {
		if strings.Contains(r.body, secret) {
			t.Errorf("locked alarms leak %q: %s", secret, r.body)
		}
	}

	for name, target := range map[string]string{
		"no cookie":   "",
		"wrong token": lockCookie + "=AAAAAAAAAAAAAAAAAAAAAA",
	} {
		if r := w.do(t, "GET", "/console/acme/locked/alarms", "", nil, "Cookie", target); r.code != 401 {
			t.Errorf("%s: %d", name, r.code)
		}
	}
	if r := w.withLock(t, "/console/other/locked/alarms", ck); r.code != 401 {
		t.Errorf("another organisation with acme's lock: %d", r.code)
	}
	// The sign-in session alone does not open it.
	if r := w.do(t, "GET", "/console/acme/locked/alarms", tok, nil); r.code != 401 {
		t.Errorf("session without the lock: %d", r.code)
	}

	// Demoted to worker (person-scoped): refused, and the lock is gone.
	bf.members["u-supervisor"] = []store.Membership{{UserID: "u-supervisor", OrgID: "acme", Role: store.RoleWorker}}
	if r := w.withLock(t, "/console/acme/locked/alarms", ck); r.code != 401 {
		t.Errorf("demoted user: %d", r.code)
	}
	bf.members["u-supervisor"] = []store.Membership{{UserID: "u-supervisor", OrgID: "acme", Role: store.RoleSupervisor}}
	if r := w.withLock(t, "/console/acme/locked/alarms", ck); r.code != 401 {
		t.Errorf("a refused lock came back: %d", r.code)
	}

	// Disabled.
	ck = lockCookieOf(t, w.do(t, "GET", "/console/acme/wall", tok, nil))
	if r := w.withLock(t, "/console/acme/locked/alarms", ck); r.code != 200 {
		t.Fatalf("new lock: %d", r.code)
	}
	u := bf.users["u-supervisor"]
	u.DisabledAt = time.Now()
	bf.users["u-supervisor"] = u
	if r := w.withLock(t, "/console/acme/locked/alarms", ck); r.code != 401 {
		t.Errorf("disabled user: %d", r.code)
	}
}

func TestEndLock(t *testing.T) {
	w, _, c := newBoardWorld(t)
	tok := w.auth.session("acme", store.RoleSupervisor, true)
	ck := lockCookieOf(t, w.do(t, "GET", "/console/acme/board", tok, nil))
	// A second board in the same browser replaces the first lock.
	ck2 := lockCookieOf(t, w.do(t, "GET", "/console/acme/board", tok, nil, "Cookie", lockCookie+"="+ck.Value))
	if ck2.Value == ck.Value {
		t.Error("the lock token was not renewed")
	}
	if r := w.withLock(t, "/console/acme/locked/alarms", ck); r.code != 401 {
		t.Errorf("replaced lock: %d", r.code)
	}
	if r := w.withLock(t, "/console/acme/locked/alarms", ck2); r.code != 200 {
		t.Errorf("current lock: %d", r.code)
	}
	// Sign-out's endLock forgets the token and clears the cookie.
	req := httptest.NewRequest("POST", "https://vigil.example/console/logout", nil)
	req.AddCookie(ck2)
	rec := httptest.NewRecorder()
	c.endLock(rec, req)
	cleared := false
	for _, k := range rec.Result().Cookies() {
		cleared = cleared || (k.Name == lockCookie && k.MaxAge < 0 && k.Value == "")
	}
	if !cleared {
		t.Errorf("endLock did not clear the cookie: %v", rec.Header())
	}
	if r := w.withLock(t, "/console/acme/locked/alarms", ck2); r.code != 401 {
		t.Errorf("ended lock: %d", r.code)
	}
}
