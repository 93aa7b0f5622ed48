package app_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vigil/internal/event"
)

// repAlerts lists acme's alerts through the API as the admin.
func repAlerts(t *testing.T, admin *browser) []map[string]any {
	t.Helper()
	r := admin.do("GET", "/api/v1/alerts?org=acme", "")
	var out []map[string]any
	list, _ := r.json(t)["alerts"].([]any)
	for _, a := range list {
		out = append(out, a.(map[string]any))
	}
	return out
}

// TestReportsInBrowser: two SOS alarms this month, one acknowledged and
// resolved as a false alarm, one acknowledged; in headless Chromium the
// reports page draws its uPlot charts from the month's numbers, its CSV
// link answers text/csv, and the audit log page lists entries with
// hostile text shown as text. Nothing logs an error or a CSP violation.
func TestReportsInBrowser(t *testing.T) {
	chromiumPath(t)
	w := newAccessWorld(t)
	admin, secret, _ := w.enrolledAdmin(t)
	if r := admin.do("POST", "/api/v1/orgs", `{"id":"acme","name":"Acme Care"}`); r.status != 201 {
		t.Fatalf("create org: %d %s", r.status, r.body)
	}
	dev := registerWorker(t, w.a, "p1")
	cl := mqttConnect(t, w.a, dev)

	// Two alarms raised over MQTT: one acknowledged 8 s later, one 30 s.
	for i, id := range []string{"sos-report-1", "sos-report-2"} {
		publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: id, TS: w.clk.Now(), Type: event.TypeButton,
			Button: &event.Button{Kind: event.ButtonSOS}})
		var al map[string]any
		eventually(t, "alarm "+id, func() bool {
			for _, a := range repAlerts(t, admin) {
				if a["state"] == "raised" {
					al = a
					return true
				}
			}
			return false
		})
		w.clk.Advance([]time.Duration{8 * time.Second, 30 * time.Second}[i])
		alertID := al["id"].(string)
		if r := admin.do("POST", "/api/v1/alerts/"+alertID+"/acknowledge", `{}`); r.status != 200 {
			t.Fatalf("acknowledge: %d %s", r.status, r.body)
		}
		if i == 0 {
			if r := admin.do("POST", "/api/v1/alerts/"+alertID+"/resolve", `{"outcome":"false_alarm"}`); r.status != 200 {
				t.Fatalf("resolve: %d %s", r.status, r.body)
			}
		}
		w.clk.Advance(time.Minute)
	}
	// A user with a hostile name, for the users page.
	if r := admin.do("POST", "/api/v1/orgs/acme/users", `{"email":"eve@example.org","name":"`+strings.ReplaceAll(setXSSSVG, `"`, `\"`)+`","role":"auditor"}`); r.status != 201 {
		t.Fatalf("invite: %d %s", r.status, r.body)
	}
	// The CSV through the console as a plain client too.
	if r := admin.do("GET", "/console/acme/reports/csv?month=2026-11", ""); r.status != 200 ||
		!strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment;") ||
		!strings.Contains(string(r.body), "2026-11,UTC,acme,sos,2,2,0,0,2,1,1,1,0.5,") {
		t.Fatalf("csv: %d %v\n%s", r.status, r.header, r.body)
	}
	w.clk.Advance(30 * time.Second) // the enrolment used this step's code

	b := newChrome(t, "https://"+w.a.Addr("https"), 90*time.Second)
	b.signIn("ada@example.org", strongPassword, secret, w.clk.Now())

	b.do("reports page", chromedp.Navigate(b.base+"/console/acme/reports?month=2026-11"),
		chromedp.WaitVisible(chromedp.CSS("#report-table")))
	b.poll("charts drawn", `document.querySelector("#chart-within .uplot canvas") !== null && document.querySelector("#chart-kinds .uplot canvas") !== null`, 20*time.Second)
	if got := b.text("#row-total td"); got != "2" {
		t.Errorf("total alerts cell %q, want 2", got)
	}
	if got := b.text("#targets tbody tr:first-child td.verdict"); got != "not met" {
		t.Errorf("BS 8484 10 s verdict %q, want not met (one of two within 10 s)", got)
	}
	if n := b.eval(`document.querySelectorAll("nav.menu a[aria-current=page]").length`); n != 1 {
		t.Errorf("%d current menu links", n)
	}
	b.screenshot("reports")

	// The CSV link, fetched by the page's own origin.
	ctype, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](
		`fetch(document.getElementById("csv-link").href).then(r => r.headers.get("content-type") + "|" + r.headers.get("content-disposition"))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		b.failed("fetch csv", err)
	}
	if !strings.HasPrefix(ctype, "text/csv") || !strings.Contains(ctype, "attachment") {
		t.Errorf("csv link answers %q", ctype)
	}

	// The month picker: another month, no data, still a chart.
	b.do("previous month", chromedp.Click(chromedp.CSS("#prev-month")), chromedp.WaitVisible(chromedp.CSS("#report-table")))
	b.poll("empty month drawn", `document.querySelector("#chart-within .uplot canvas") !== null && document.querySelector("#chart-kinds .empty") !== null`, 20*time.Second)
	if got := b.text("h1"); got != "Response report 2026-10" {
		t.Errorf("heading %q", got)
	}

	// The audit log: hostile text in an entry's details is text.
	b.do("hostile audit filter", chromedp.Navigate(b.base+"/console/acme/audit?action="+url.QueryEscape(setXSSImg)),
		chromedp.WaitVisible(chromedp.CSS("#audit-filter")))
	b.do("audit page", chromedp.Navigate(b.base+"/console/acme/audit?action=audit.read"),
		chromedp.WaitVisible(chromedp.CSS("#audit tr.entry")))
	if got := b.eval(`[...document.querySelectorAll("#audit td.details")].filter(e => e.textContent.includes("<img src=x onerror=alert(1)>")).length`); got != 1 {
		t.Errorf("hostile detail shown as text %d times, want 1", got)
	}
	b.do("all entries", chromedp.Navigate(b.base+"/console/acme/audit"), chromedp.WaitVisible(chromedp.CSS("#audit tr.entry")))
	if n := b.eval(`document.querySelectorAll("#audit tr.entry").length`); n < 5 {
		t.Errorf("%d audit entries shown", n)
	}
	b.do("users page", chromedp.Navigate(b.base+"/console/acme/users"), chromedp.WaitVisible(chromedp.CSS("#users")))
	if n := b.eval(`document.querySelectorAll('img[src="x"], svg').length`); n != 0 {
		t.Errorf("%d injected elements", n)
	}
	if got := b.eval(`[...document.querySelectorAll("#users td.name")].filter(e => e.textContent.includes('"><svg onload=alert(1)>')).length`); got != 1 {
		t.Errorf("hostile name shown as text %d times, want 1", got)
	}
	b.noProblems()
}
