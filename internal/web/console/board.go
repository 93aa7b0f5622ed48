package console

// The live board, the wall screen and the locked console.
//
// The board (GET /console/{org}/board) is for staff who see the whole
// organisation (alerts.read, not limited to some people): a map of every
// on-duty worker's and resident's device coloured by state, the alarm
// queue and the active sessions. static/board.js keeps it live: the queue
// and sessions re-render from fragments on every feed event, positions
// come as JSON. The wall screen (GET /console/{org}/wall) is the map and
// the queue in large type, with no menu and no buttons.
//
// The locked console (security row 24): serving the board or the wall also
// issues a lock credential, the __Host-vigil_lock cookie, separate from the
// sign-in session. When the session idles out or ends, board.js switches to
// a lock screen that polls GET /console/{org}/locked/alarms with only that
// cookie: the count of open alarms and, per alarm, kind, severity, state
// and raised time; never a name, a person, a place or a note. Each call
// re-checks that the user still exists, is enabled and holds alerts.read
// in that organisation. Tokens live in memory (a restart ends every lock),
// stored as SHA-256, pruned when they expire; signing out ends the lock
// (endLock).

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"vigil/internal/auth"
	"vigil/internal/store"
)

// boardRoutes are the console's routes of this page family (see routes).
var boardRoutes = []route{
	{"GET /console/{org}/board", false, func(c *Console) http.HandlerFunc { return c.boardPage }},
	{"GET /console/{org}/wall", false, func(c *Console) http.HandlerFunc { return c.wallPage }},
	{"GET /console/{org}/board/queue", false, func(c *Console) http.HandlerFunc { return c.boardQueue }},
	{"GET /console/{org}/board/sessions", false, func(c *Console) http.HandlerFunc { return c.boardSessions }},
	{"GET /console/{org}/board/positions", false, func(c *Console) http.HandlerFunc { return c.boardPositions }},
	// Authenticated by the lock cookie only, never by the session.
	{"GET /console/{org}/locked/alarms", true, func(c *Console) http.HandlerFunc { return c.lockedAlarms }},
}

// boardStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
//
// It stays empty so that the package's test fakes keep compiling; the
// board asks for boardReader (which store.Store implements) at run time.
type boardStore interface{}

// boardReader is what the board reads of the store: the organisation's
// devices, sessions and people, and, for the lock, the user and their
// memberships and the sign-in session's absolute end.
type boardReader interface {
	ListDevices(ctx context.Context, orgID string) ([]store.Device, error)
	ListSessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error)
	ListPeople(ctx context.Context, orgID string) ([]store.Person, error)
	GetUser(ctx context.Context, id string) (store.User, error)
	ListMemberships(ctx context.Context, userID string) ([]store.Membership, error)
	GetWebSession(ctx context.Context, idHash []byte) (store.WebSession, error)
}

// Board thresholds.
const (
	boardOfflineAfter = 15 * time.Minute
	boardLowBattery   = 20 // percent
	lockCookie        = "__Host-vigil_lock"
)

func (c *Console) boardStore() (boardReader, error) {
	st, ok := c.st.(boardReader)
	if !ok {
		return nil, errors.New("console: the store does not serve the board")
	}
	return st, nil
}

// boardNow is the server's time (the sign-in service's clock, so tests on
// a manual clock agree with session expiry).
func (c *Console) boardNow() time.Time {
	if clk := c.auth.Config().Clock; clk != nil {
		return clk.Now()
	}
	return time.Now()
}

// boardAccess is orgAccess for the board's fragments and JSON: a caller
// whose session idled out or ended gets a bare 401 (no redirect), which
// board.js reads as "lock the console".
func (c *Console) boardAccess(w http.ResponseWriter, r *http.Request) (*auth.Principal, string, bool) {
	p := c.principal(r)
	if p == nil || !p.MFA {
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("console locked: sign in again\n"))
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

// boardAlert is one row of the alarm queue.
type boardAlert struct {
	ID, Kind, Severity, State string
	Duress                    bool
	Person                    string // name, else id, else ""
	DeviceID                  string
	RaisedAt                  time.Time
	CanAck                    bool
}

// boardSession is one active session.
type boardSession struct {
	ID, Person, Preset, Note string
	StartedAt                time.Time
	Due                      time.Time // next check-in or end, whichever first
	DueWhat                  string    // "check-in" or "end"
	Overdue                  bool
}

// boardMarker is one device on the map (map.js's marker shape).
type boardMarker struct {
	ID    string  `json:"id"`
	Lat   float64 `json:"lat"`
	Lon   float64 `json:"lon"`
	Acc   float64 `json:"acc"`
	State string  `json:"state"`
	Label string  `json:"label"`
	Href  string  `json:"href,omitempty"`
}

// boardView is the board's, the wall's and the fragments' data.
type boardView struct {
	Org      string
	Nav      Nav
	Wall     bool
	Live     bool // feed.read: follow the feed
	Now      time.Time
	Alerts   []boardAlert
	Sessions []boardSession
	Markers  []boardMarker
}

// boardData reads what the board shows of org for p at now.
func (c *Console) boardData(ctx context.Context, p *auth.Principal, org string, now time.Time) (boardView, error) {
	v := boardView{Org: org, Now: now, Live: p.Can(org, auth.FeedRead)}
	st, err := c.boardStore()
	if err != nil {
		return v, err
	}
	people, err := st.ListPeople(ctx, org)
	if err != nil {
		return v, fmt.Errorf("board of %s: people: %w", org, err)
	}
	byID := make(map[string]store.Person, len(people))
	for _, pr := range people {
		byID[pr.ID] = pr
	}
	name := func(id string) string {
		if pr, ok := byID[id]; ok && pr.Name != "" {
			return pr.Name
		}
		return id
	}
	alerts, err := c.st.ListAlerts(ctx, store.AlertFilter{OrgID: org,
		States: []store.AlertState{store.AlertPending, store.AlertRaised, store.AlertAcknowledged}, Limit: 500})
	if err != nil {
		return v, fmt.Errorf("board of %s: alerts: %w", org, err)
	}
	alarmPerson, alarmDevice := map[string]string{}, map[string]string{}
	for _, al := range alerts {
		if al.PersonID != "" {
			alarmPerson[al.PersonID] = al.ID
		}
		if al.DeviceID != "" {
			alarmDevice[al.DeviceID] = al.ID
		}
		v.Alerts = append(v.Alerts, boardAlert{ID: al.ID, Kind: al.Kind, Severity: al.Severity, State: string(al.State),
			Duress: al.Duress, Person: name(al.PersonID), DeviceID: al.DeviceID, RaisedAt: al.RaisedAt,
			CanAck: al.State == store.AlertRaised && p.DecideFor(org, al.PersonID, auth.AlertsRespond) == auth.Allow})
	}
	// Critical first, then newest.
	slices.SortStableFunc(v.Alerts, func(a, b boardAlert) int {
		if ac, bc := a.Severity == "critical", b.Severity == "critical"; ac != bc {
			if ac {
				return -1
			}
			return 1
		}
		return b.RaisedAt.Compare(a.RaisedAt)
	})

	sessions, err := st.ListSessions(ctx, store.SessionFilter{OrgID: org, ActiveOnly: true, Limit: 1000})
	if err != nil {
		return v, fmt.Errorf("board of %s: sessions: %w", org, err)
	}
	overdue := map[string]bool{}
	onDuty := map[string]bool{}
	for _, s := range sessions {
		if s.State != store.SessionActive {
			continue
		}
		due, what := s.ExpectedEnd, "end"
		if s.CheckinInterval > 0 {
			if next := s.LastCheckin.Add(s.CheckinInterval); next.Before(due) {
				due, what = next, "check-in"
			}
		}
		bs := boardSession{ID: s.ID, Person: name(s.PersonID), Preset: s.Preset, Note: s.Note, StartedAt: s.StartedAt,
			Due: due, DueWhat: what, Overdue: now.After(due)}
		v.Sessions = append(v.Sessions, bs)
		onDuty[s.PersonID] = true
		if bs.Overdue {
			overdue[s.PersonID] = true
		}
	}
	slices.SortFunc(v.Sessions, func(a, b boardSession) int { return cmp.Or(a.Due.Compare(b.Due), cmp.Compare(a.ID, b.ID)) })

	devices, err := st.ListDevices(ctx, org)
	if err != nil {
		return v, fmt.Errorf("board of %s: devices: %w", org, err)
	}
	for _, d := range devices {
		pos := d.State.LastPosition
		if pos == nil || !d.DisabledAt.IsZero() || d.OrgID != org {
			continue
		}
		pr, known := byID[d.PersonID]
		alarmID, alarm := alarmDevice[d.ID]
		if !alarm && d.PersonID != "" {
			alarmID, alarm = alarmPerson[d.PersonID]
		}
		// Workers on duty, residents, and anyone in alarm.
		if !alarm && !(known && (pr.Kind == store.PersonResident || onDuty[d.PersonID])) {
			continue
		}
		m := boardMarker{ID: d.ID, Lat: pos.Lat, Lon: pos.Lon, Acc: pos.AccuracyM, State: "ok", Label: name(d.PersonID)}
		if m.Label == "" {
			m.Label = d.Name
		}
		switch {
		case alarm:
			m.State, m.Href = "alarm", "/console/"+org+"/alerts/"+alarmID
		case overdue[d.PersonID]:
			m.State = "overdue"
		case d.State.LastSeen.IsZero() || now.Sub(d.State.LastSeen) > boardOfflineAfter:
			m.State = "offline"
		case d.State.Battery != nil && *d.State.Battery < boardLowBattery:
			m.State = "low_battery"
		}
		v.Markers = append(v.Markers, m)
	}
	slices.SortFunc(v.Markers, func(a, b boardMarker) int { return cmp.Compare(a.ID, b.ID) })
	return v, nil
}

// boardServe renders the board or the wall (page) for a signed-in caller
// and issues the lock credential.
func (c *Console) boardServe(w http.ResponseWriter, r *http.Request, wall bool) {
	p, org, ok := c.orgAccess(w, r, false)
	if !ok || !c.audited(w, r, p, org, "board.view", "org", org) {
		return
	}
	v, err := c.boardData(r.Context(), p, org, c.boardNow())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v.Wall = wall
	if err := c.issueLock(w, r, p, org); err != nil {
		c.fail(w, r, err)
		return
	}
	name := "board.html"
	if wall {
		name = "wall.html"
	} else {
		v.Nav = nav(p, org, "board")
	}
	c.render(w, http.StatusOK, name, v)
}

func (c *Console) boardPage(w http.ResponseWriter, r *http.Request) { c.boardServe(w, r, false) }
func (c *Console) wallPage(w http.ResponseWriter, r *http.Request)  { c.boardServe(w, r, true) }

// boardFragment answers one of the board's live parts.
func (c *Console) boardFragment(w http.ResponseWriter, r *http.Request, tmpl string) {
	p, org, ok := c.boardAccess(w, r)
	if !ok || !c.audited(w, r, p, org, "board.view", "org", org) {
		return
	}
	v, err := c.boardData(r.Context(), p, org, c.boardNow())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v.Wall = r.URL.Query().Get("wall") == "1"
	c.render(w, http.StatusOK, tmpl, v)
}

func (c *Console) boardQueue(w http.ResponseWriter, r *http.Request) {
	c.boardFragment(w, r, "board-queue")
}

func (c *Console) boardSessions(w http.ResponseWriter, r *http.Request) {
	c.boardFragment(w, r, "board-sessions")
}

// boardPositions answers the map's markers as JSON.
func (c *Console) boardPositions(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.boardAccess(w, r)
	if !ok || !c.audited(w, r, p, org, "board.positions", "org", org) {
		return
	}
	v, err := c.boardData(r.Context(), p, org, c.boardNow())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if v.Markers == nil {
		v.Markers = []boardMarker{}
	}
	boardJSON(w, http.StatusOK, map[string]any{"now": v.Now.UTC().Format(time.RFC3339), "markers": v.Markers})
}

func boardJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal"}`)
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// lockEntry is one issued lock credential.
type lockEntry struct {
	userID, org string
	expires     time.Time
}

// lockTable holds the lock credentials by SHA-256 of the token.
type lockTable struct {
	mu sync.Mutex
	m  map[[32]byte]lockEntry
}

func (c *Console) lockTable() *lockTable { return &c.locks }

func lockHash(tok string) [32]byte { return sha256.Sum256([]byte("vigil-lock\x00" + tok)) }

// issueLock sets a fresh lock cookie for p in org, valid until the sign-in
// session's absolute end (at most MaxLifetime from now), and forgets the
// browser's previous one.
func (c *Console) issueLock(w http.ResponseWriter, r *http.Request, p *auth.Principal, org string) error {
	now := c.boardNow()
	exp := now.Add(c.auth.Config().MaxLifetime)
	if st, err := c.boardStore(); err == nil && p.SessionHash != nil {
		if ws, err := st.GetWebSession(r.Context(), p.SessionHash); err == nil && ws.ExpiresAt.Before(exp) {
			exp = ws.ExpiresAt
		}
	}
	if !exp.After(now) {
		return nil
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("console: lock token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	t := c.lockTable()
	t.mu.Lock()
	if ck, err := r.Cookie(lockCookie); err == nil {
		delete(t.m, lockHash(ck.Value))
	}
	for h, e := range t.m {
		if !now.Before(e.expires) {
			delete(t.m, h)
		}
	}
	t.m[lockHash(tok)] = lockEntry{userID: p.UserID, org: org, expires: exp}
	t.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: lockCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: max(1, int(exp.Sub(now)/time.Second))})
	return nil
}

// endLock ends the browser's lock credential (sign-out calls it): the
// token is forgotten and the cookie cleared.
func (c *Console) endLock(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(lockCookie); err == nil {
		t := c.lockTable()
		t.mu.Lock()
		delete(t.m, lockHash(ck.Value))
		t.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: lockCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// lockedAlarm is all the locked console shows of an alarm.
type lockedAlarm struct {
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	State    string `json:"state"`
	RaisedAt string `json:"raised_at"`
}

// lockedAlarms answers the open alarms of org with minimal information to
// the holder of a valid lock cookie whose user still watches org.
func (c *Console) lockedAlarms(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	refuse := func() {
		boardJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "locked", "message": "sign in again"}})
	}
	ck, err := r.Cookie(lockCookie)
	if err != nil || ck.Value == "" {
		refuse()
		return
	}
	h := lockHash(ck.Value)
	now := c.boardNow()
	t := c.lockTable()
	t.mu.Lock()
	e, ok := t.m[h]
	if ok && !now.Before(e.expires) {
		delete(t.m, h)
		ok = false
	}
	t.mu.Unlock()
	if !ok || e.org != org {
		refuse()
		return
	}
	st, err := c.boardStore()
	if err != nil {
		c.fail(w, r, err)
		return
	}
	u, err := st.GetUser(r.Context(), e.userID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !u.DisabledAt.IsZero()) {
		c.forgetLock(h)
		refuse()
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	ms, err := st.ListMemberships(r.Context(), u.ID)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if p := auth.NewPrincipal(u, ms, nil); !p.Can(org, auth.AlertsRead) || p.Scoped(org) {
		c.forgetLock(h)
		refuse()
		return
	}
	list, err := c.st.ListAlerts(r.Context(), store.AlertFilter{OrgID: org,
		States: []store.AlertState{store.AlertPending, store.AlertRaised, store.AlertAcknowledged}, Limit: 500})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	out := make([]lockedAlarm, 0, len(list))
	for _, al := range list {
		out = append(out, lockedAlarm{Kind: al.Kind, Severity: al.Severity, State: string(al.State),
			RaisedAt: al.RaisedAt.UTC().Format(time.RFC3339)})
	}
	boardJSON(w, http.StatusOK, map[string]any{"count": len(out), "alarms": out, "now": now.UTC().Format(time.RFC3339)})
}

func (c *Console) forgetLock(h [32]byte) {
	t := c.lockTable()
	t.mu.Lock()
	delete(t.m, h)
	t.mu.Unlock()
}
