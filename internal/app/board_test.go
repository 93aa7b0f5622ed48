package app_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"vigil/internal/event"
)

// boardWorld is a server with org acme, its enrolled admin (signed in to
// the console's API in admin) and worker p1's device.
func boardWorld(t *testing.T) (*accessWorld, *browser, []byte) {
	t.Helper()
	w := newAccessWorld(t)
	admin, secret, _ := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}
	return w, admin, secret
}

// lockedAlarms reads the locked console's alarm list with the browser's
// cookies (the sign-in session among them, expired or not).
func lockedAlarms(t *testing.T, b *browser) (int, map[string]any, string) {
	t.Helper()
	r := b.do("GET", "/console/acme/locked/alarms", "")
	var m map[string]any
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatalf("locked alarms: %s", r.body)
		}
	}
	return r.status, m, string(r.body)
}

// TestBoardLockedConsole is security requirement 24 on the real server: a
// console whose sign-in session idled out still shows new alarms with
// minimal information, and only while its user may watch them.
func TestBoardLockedConsole(t *testing.T) {
	w, admin, _ := boardWorld(t)
	ctx := context.Background()
	dev := registerWorker(t, w.a, "p1")
	u, err := w.a.Store().GetUserByEmail(ctx, "ada@example.org")
	if err != nil {
		t.Fatal(err)
	}

	r := admin.do("GET", "/console/acme/board", "")
	if r.status != 200 || !strings.Contains(string(r.body), `id="board-map"`) {
		t.Fatalf("board: %d %s", r.status, r.body)
	}
	var lock string
	for _, c := range r.set {
		if c.Name == "__Host-vigil_lock" {
			lock = c.Raw
		}
	}
	for _, want := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(lock, want) {
			t.Errorf("lock cookie %q lacks %s", lock, want)
		}
	}
	if code, m, body := lockedAlarms(t, admin); code != 200 || m["count"] != 0.0 {
		t.Fatalf("locked alarms, signed in: %d %s", code, body)
	}

	// 16 minutes idle: the sign-in session is over, the lock is not.
	w.clk.Advance(16 * time.Minute)
	if r := admin.do("GET", "/console/acme/board/queue", ""); r.status != 401 {
		t.Errorf("board fragment after 16 min idle: %d, want 401", r.status)
	}
	if r := admin.do("GET", "/console/acme/board/positions", ""); r.status != 401 {
		t.Errorf("board positions after 16 min idle: %d, want 401", r.status)
	}
	if code, _, body := lockedAlarms(t, admin); code != 200 {
		t.Fatalf("locked alarms after idle: %d %s", code, body)
	}

	cl := mqttConnect(t, w.a, dev)
	publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "sos-locked", TS: w.clk.Now(), Type: event.TypeButton,
		Button: &event.Button{Kind: event.ButtonSOS}, Position: &event.Position{Lat: 51.501, Lon: -0.141, AccuracyM: 9}})
	var body string
	eventually(t, "the SOS on the locked console", func() bool {
		code, m, b := lockedAlarms(t, admin)
		body = b
		return code == 200 && m["count"] == 1.0
	})
	var got struct {
		Alarms []map[string]string `json:"alarms"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Alarms) != 1 {
		t.Fatalf("locked alarms: %s", body)
	}
	a := got.Alarms[0]
	if len(a) != 4 || a["kind"] != "sos" || a["severity"] != "critical" || a["state"] == "" ||
		a["raised_at"] != w.clk.Now().UTC().Format(time.RFC3339) {
		t.Errorf("locked alarm %v: want kind, severity, state and raised time only", a)
	}
	for _, secret := range []string{"Ann", "p1", dev.DeviceID, "51.5", "-0.14", "al_"} {
		if strings.Contains(body, secret) {
			t.Errorf("the locked console shows %q: %s", secret, body)
		}
	}
	// The details need a new sign-in.
	if r := admin.do("GET", "/console/acme/board", ""); !strings.Contains(string(r.body), `id="login-form"`) || strings.Contains(string(r.body), "Ann") {
		t.Errorf("board after idle: %d, want the sign-in page", r.status)
	}

	// A disabled user's lock ends at once.
	if err := w.a.Store().SetUserDisabled(ctx, u.ID, w.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if code, _, body := lockedAlarms(t, admin); code != 401 {
		t.Errorf("locked alarms of a disabled user: %d %s", code, body)
	}
}

// TestBoardSignOutEndsLock: signing out ends the lock credential too.
func TestBoardSignOutEndsLock(t *testing.T) {
	_, admin, _ := boardWorld(t)
	if r := admin.do("GET", "/console/acme/wall", ""); r.status != 200 {
		t.Fatalf("wall: %d %s", r.status, r.body)
	}
	if code, _, body := lockedAlarms(t, admin); code != 200 {
		t.Fatalf("locked alarms: %d %s", code, body)
	}
	lock := admin.cookies["__Host-vigil_lock"]
	admin.header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := admin.do("POST", "/console/logout", ""); !strings.Contains(string(r.body), `id="login-form"`) {
		t.Fatalf("sign out: %d %s", r.status, r.body)
	}
	admin.header.Del("Content-Type")
	admin.cookies["__Host-vigil_lock"] = lock
	if code, _, body := lockedAlarms(t, admin); code != 401 {
		t.Errorf("locked alarms after sign-out: %d %s, want 401", code, body)
	}
}

// TestBoardLockExpires: the lock lasts no longer than the sign-in
// session's absolute lifetime.
func TestBoardLockExpires(t *testing.T) {
	w, admin, _ := boardWorld(t)
	if r := admin.do("GET", "/console/acme/board", ""); r.status != 200 {
		t.Fatalf("board: %d %s", r.status, r.body)
	}
	w.clk.Advance(11 * time.Hour)
	if code, _, body := lockedAlarms(t, admin); code != 200 {
		t.Errorf("locked alarms after 11 h: %d %s", code, body)
	}
	w.clk.Advance(time.Hour + time.Second)
	if code, _, body := lockedAlarms(t, admin); code != 401 {
		t.Errorf("locked alarms after the session's 12 h: %d %s", code, body)
	}
}

var assetRe = regexp.MustCompile(`<script (?:nonce="[^"]*" )?src="([^"]+)"|<link rel="stylesheet" href="([^"]+)"`)

// TestBoardPageWeight: the board and everything it loads (scripts and
// style sheets; map tiles excluded) stay under issue 6's 300 KB budget.
func TestBoardPageWeight(t *testing.T) {
	_, admin, _ := boardWorld(t)
	r := admin.do("GET", "/console/acme/board", "")
	if r.status != 200 {
		t.Fatalf("board: %d %s", r.status, r.body)
	}
	total := len(r.body)
	t.Logf("board HTML: %d bytes", len(r.body))
	n := 0
	for _, m := range assetRe.FindAllStringSubmatch(string(r.body), -1) {
		src := m[1] + m[2]
		if !strings.HasPrefix(src, "/static/") {
			t.Errorf("asset %q is not from this server", src)
			continue
		}
		a := admin.do("GET", strings.ReplaceAll(src, "&amp;", "&"), "")
		if a.status != 200 {
			t.Errorf("%s: %d", src, a.status)
		}
		t.Logf("%s: %d bytes", src, len(a.body))
		total += len(a.body)
		n++
	}
	if n < 6 {
		t.Errorf("only %d assets found; the page should load htmx, Leaflet, map.js, board.js and their styles", n)
	}
	t.Logf("board page weight: %d bytes (%.1f KB) in %d files", total, float64(total)/1024, n+1)
	if total >= 300*1024 {
		t.Errorf("board page weight %d bytes, budget 300 KB", total)
	}
}
