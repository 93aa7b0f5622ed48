package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/app"
	"vigil/internal/config"
	"vigil/internal/report"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
	"vigil/internal/web"
)

// seedReport stores a few alerts of acme around November 2026 in London
// (GMT, so London times are UTC times), in the data dir's store.
func seedReport(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nov := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	raise := func(id, kind string, at time.Time, change func(*store.Alert)) {
		t.Helper()
		a := store.Alert{ID: id, OrgID: "acme", Kind: kind, Severity: "critical", State: store.AlertRaised, DedupKey: id, RaisedAt: at, CauseTime: at.Add(-time.Second)}
		got, _, err := st.RaiseAlert(ctx, a, store.AlertEntry{At: at, Actor: "engine", Action: "raised", Cause: "test:" + id})
		if err != nil {
			t.Fatal(err)
		}
		if change == nil {
			return
		}
		change(&got)
		if _, err := st.UpdateAlert(ctx, got, store.AlertEntry{At: at, Actor: "test", Action: string(got.State)}); err != nil {
			t.Fatal(err)
		}
	}
	raise("s1", "sos", nov, func(a *store.Alert) {
		a.State, a.AcknowledgedAt, a.ClosedAt, a.Outcome = store.AlertResolved, nov.Add(8*time.Second), nov.Add(10*time.Minute), "assisted"
	})
	raise("s2", "sos", nov.Add(time.Hour), func(a *store.Alert) {
		a.State, a.AcknowledgedAt = store.AlertAcknowledged, a.RaisedAt.Add(30*time.Second)
	})
	raise("m1", "missed_checkin", nov.Add(2*time.Hour), func(a *store.Alert) {
		a.State, a.AcknowledgedAt, a.ClosedAt, a.Outcome = store.AlertResolved, a.RaisedAt.Add(70*time.Second), a.RaisedAt.Add(2*time.Minute), "false_alarm"
	})
	raise("oct", "sos", time.Date(2026, 10, 31, 23, 59, 59, 0, time.UTC), nil)
}

func TestCLIReportResponse(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "acme", "--name", "Acme Care"); code != 0 {
		t.Fatalf("org add: %s", errs)
	}
	seedReport(t, dir)
	args := []string{"report", "response", "--data-dir", dir, "--month", "2026-11", "--org", "acme", "--tz", "Europe/London"}

	code, out, errs := cli(t, nil, append(args, "--format", "json")...)
	if code != 0 {
		t.Fatalf("report --format json: %d %s", code, errs)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, out)
	}
	tot := r.Total
	within := []int{}
	for _, w := range tot.AcknowledgedWithin {
		within = append(within, w.Count)
	}
	if tot.Alerts != 3 || tot.Raised != 3 || tot.Resolved != 2 || tot.FalseAlarms != 1 || !cmp.Equal(within, []int{1, 2, 2, 3}) || len(r.Kinds) != 2 {
		t.Errorf("report: %+v, within %v", tot, within)
	}
	if r.TimeZone != "Europe/London" || r.OrgID != "acme" || r.Month != "2026-11" {
		t.Errorf("report period: %q %q %q", r.OrgID, r.Month, r.TimeZone)
	}

	code, out, errs = cli(t, nil, append(args, "--format", "csv")...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || lines[0] != strings.Join(report.CSVHeader(), ",") || !strings.HasPrefix(lines[3], "2026-11,Europe/London,acme,total,3,") {
		t.Errorf("report --format csv: %d %s\n%s", code, errs, out)
	}

	code, out, errs = cli(t, nil, args...)
	if code != 0 || !strings.Contains(out, "Response report: acme, 2026-11") || !strings.Contains(out, "BS 8484") || !strings.Contains(out, "missed_checkin") {
		t.Errorf("report (text): %d %s\n%s", code, errs, out)
	}

	// Every organisation, no --org.
	code, out, errs = cli(t, nil, "report", "response", "--data-dir", dir, "--month", "2026-10", "--format", "csv")
	if code != 0 || !strings.Contains(out, "2026-10,UTC,,total,1,") {
		t.Errorf("report for every organisation: %d %s\n%s", code, errs, out)
	}

	for _, tc := range []struct {
		code int
		want string
		args []string
	}{
		{2, "--month", []string{"report", "response", "--data-dir", dir}},
		{2, "--month", []string{"report", "response", "--data-dir", dir, "--month", "2026-13"}},
		{2, "--month", []string{"report", "response", "--data-dir", dir, "--month", "November"}},
		{2, "--tz", []string{"report", "response", "--data-dir", dir, "--month", "2026-11", "--tz", "Mars/Olympus"}},
		{2, "--format", []string{"report", "response", "--data-dir", dir, "--month", "2026-11", "--format", "xml"}},
		{2, "vigil report response", []string{"report"}},
		{2, "vigil report response", []string{"report", "latency"}},
		{1, "vigil org list", []string{"report", "response", "--data-dir", dir, "--month", "2026-11", "--org", "nope"}},
	} {
		if code, _, errs := cli(t, nil, tc.args...); code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: code %d, %q; want %d and %q", tc.args[1:], code, errs, tc.code, tc.want)
		}
	}
}

// TestAPIReportResponse: the console's API gives the same report as the
// command line, and names the field it refuses.
func TestAPIReportResponse(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := cli(t, nil, "org", "add", "--data-dir", dir, "--id", "acme", "--name", "Acme Care"); code != 0 {
		t.Fatalf("org add: %s", errs)
	}
	seedReport(t, dir)
	code, out, errs := cli(t, nil, "report", "response", "--data-dir", dir, "--month", "2026-11", "--org", "acme", "--tz", "Europe/London", "--format", "json")
	if code != 0 {
		t.Fatalf("report: %d %s", code, errs)
	}
	tok := tokenRe.FindString(vigilRun(t, "token", "create", "--data-dir", dir, "--org", "acme", "--name", "report test", "--permissions", "reports.read"))
	cfg := config.Default()
	cfg.DataDir = dir
	acc, err := app.OpenAccess(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	api := web.NewAPI(nil, nil, acc.Store, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	api.SetAuth(acc.Auth, acc.Audit, acc.Store)
	h := api.Handler()
	get := func(path string) (int, []byte) {
		t.Helper()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}
	status, body := get("/api/v1/orgs/acme/reports/response?month=2026-11&tz=Europe/London")
	if status != http.StatusOK {
		t.Fatalf("API: %d %s", status, body)
	}
	var fromCLI, fromAPI any
	if err := json.Unmarshal([]byte(out), &fromCLI); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &fromAPI); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(fromCLI, fromAPI); d != "" {
		t.Errorf("CLI and API reports differ (-cli +api)\n%s", d)
	}
	for _, tc := range []struct {
		path   string
		status int
		field  string
	}{
		{"/api/v1/orgs/acme/reports/response", 400, "month"},
		{"/api/v1/orgs/acme/reports/response?month=2026-1", 400, "month"},
		{"/api/v1/orgs/acme/reports/response?month=2026-11&tz=Local", 400, "tz"},
		{"/api/v1/orgs/acme/reports/response?month=2026-11&tz=Nowhere%2FAtAll", 400, "tz"},
		{"/api/v1/orgs/nope/reports/response?month=2026-11", 404, ""},
	} {
		status, body := get(tc.path)
		var e struct{ Error struct{ Code, Field string } }
		if err := json.Unmarshal(body, &e); err != nil || status != tc.status || e.Error.Field != tc.field {
			t.Errorf("GET %s: %d %s; want %d naming %q", tc.path, status, body, tc.status, tc.field)
		}
	}
}
