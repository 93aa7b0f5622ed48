package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/London on machines without a zone database

	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

type apiErr struct {
	Error struct{ Field string }
}

// TestRotaRecipient: a rota is set up through the API (its validation
// naming the field), an SOS policy step names it, and each time the step
// fires the e-mail goes to whoever is on call at that moment of the
// server's (virtual) clock: the weekly pattern's user at 0 and 1m (not
// the disabled one beside them), the user covering by an override from
// 90s at 2m. A rota a policy names cannot be deleted; every write is in
// the audit log.
func TestRotaRecipient(t *testing.T) {
	sink, port, certPEM := startMailSink(t)
	cfg := vigiltest.Config(t)
	caFile := filepath.Join(t.TempDir(), "sink-ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Notify.BaseURL = "https://vigil.example.org"
	cfg.Notify.SMTPHost, cfg.Notify.SMTPPort, cfg.Notify.SMTPTLS = "127.0.0.1", port, "implicit"
	cfg.Notify.SMTPFrom = "Vigil <vigil@example.org>"
	cfg.Notify.OutboundCAFile = caFile
	t0 := time.Now().UTC().Truncate(time.Second)
	sc := &scenario{t: t, cfg: cfg, clk: clock.NewManual(t0), t0: t0}
	sc.start()
	sc.dev = registerWorker(t, sc.a, "p1")
	sc.connect()
	ctx := context.Background()
	st := sc.a.Store()
	for _, u := range []struct{ id, email string }{{"u-base", "base@example.org"}, {"u-off", "off@example.org"}, {"u-cover", "cover@example.org"}} {
		if err := st.CreateUser(ctx, store.User{ID: u.id, Email: u.email, Name: u.id, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := st.PutMembership(ctx, store.Membership{UserID: u.id, OrgID: "acme", Role: store.RoleResponder, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetUserDisabled(ctx, "u-off", t0); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, store.User{ID: "u-stranger", Email: "stranger@example.org", Name: "S", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}

	// Bad input names the field.
	shift := func(days, start, end, users string) string {
		return fmt.Sprintf(`{"time_zone":"Europe/London","shifts":[{"days":[%s],"start":%q,"end":%q,"users":[%s]}]}`, days, start, end, users)
	}
	for _, c := range []struct{ method, path, body, field string }{
		{"PUT", "/api/v1/orgs/acme/rotas/duty", `{"time_zone":"Europe/Londres","shifts":[]}`, "time_zone"},
		{"PUT", "/api/v1/orgs/acme/rotas/duty", shift(`"mon"`, "08:00", "08:00", `"u-base"`), "shifts[0].end"},
		{"PUT", "/api/v1/orgs/acme/rotas/duty", shift(`"mon"`, "08:00", "20:00", `"u-base","u-stranger"`), "shifts[0].users[1]"},
		{"PUT", "/api/v1/orgs/acme/rotas/duty", shift(`"mon"`, "08:00", "20:00", `"nobody"`), "shifts[0].users[0]"},
		{"PUT", "/api/v1/orgs/acme/rotas/Duty%20Rota", `{"time_zone":"UTC","shifts":[]}`, "name"},
		{"PUT", "/api/v1/orgs/acme/escalation-policies/sos", `{"steps":[{"recipients":[{"rota":"duty","channel":"sms"}],"wait":"1m"}]}`,
			"steps[0].recipients[0].channel"},
	} {
		var e apiErr
		if code := sc.api.do(c.method, c.path, c.body, &e); code != 400 || e.Error.Field != c.field {
			t.Errorf("%s %s %s: %d field %q, want 400 on %q", c.method, c.path, c.body, code, e.Error.Field, c.field)
		}
	}

	// The weekly pattern covers the whole week (a 24-hour cover is two
	// shifts); from 90s an override puts u-cover on call instead.
	all := `"mon","tue","wed","thu","fri","sat","sun"`
	var rota struct {
		Name     string
		TimeZone string `json:"time_zone"`
		Shifts   []struct{ Days []string }
	}
	if code := sc.api.do("PUT", "/api/v1/orgs/acme/rotas/duty", fmt.Sprintf(`{"time_zone":"Europe/London","shifts":[
	  {"days":[%s],"start":"00:00","end":"12:00","users":["u-off","u-base"]},
	  {"days":[%s],"start":"12:00","end":"00:00","users":["u-off","u-base"]}]}`, all, all), &rota); code != 200 ||
		rota.Name != "duty" || rota.TimeZone != "Europe/London" || len(rota.Shifts) != 2 || len(rota.Shifts[0].Days) != 7 {
		t.Fatalf("put rota: %d %+v", code, rota)
	}
	for _, c := range []struct{ body, field string }{
		{fmt.Sprintf(`{"user":"u-cover","from":%q,"to":%q}`, t0.Add(time.Hour).Format(time.RFC3339), t0.Format(time.RFC3339)), "to"},
		{fmt.Sprintf(`{"user":"u-stranger","from":%q,"to":%q}`, t0.Format(time.RFC3339), t0.Add(time.Hour).Format(time.RFC3339)), "user"},
		{fmt.Sprintf(`{"user":"u-cover","from":%q,"to":%q}`, t0.Add(-2*time.Hour).Format(time.RFC3339), t0.Add(-time.Hour).Format(time.RFC3339)), "to"},
	} {
		var e apiErr
		if code := sc.api.do("POST", "/api/v1/orgs/acme/rotas/duty/overrides", c.body, &e); code != 400 || e.Error.Field != c.field {
			t.Errorf("override %s: %d field %q, want 400 on %q", c.body, code, e.Error.Field, c.field)
		}
	}
	var ov struct{ ID, User string }
	if code := sc.api.do("POST", "/api/v1/orgs/acme/rotas/duty/overrides", fmt.Sprintf(`{"user":"u-cover","from":%q,"to":%q}`,
		t0.Add(90*time.Second).Format(time.RFC3339), t0.Add(time.Hour).Format(time.RFC3339)), &ov); code != 201 || ov.ID == "" || ov.User != "u-cover" {
		t.Fatalf("add override: %d %+v", code, ov)
	}
	onCall := func(at time.Time) []string {
		t.Helper()
		var got struct {
			Users []struct {
				ID        string
				Reachable bool
			}
		}
		if code := sc.api.do("GET", "/api/v1/orgs/acme/rotas/duty/oncall?at="+at.Format(time.RFC3339), "", &got); code != 200 {
			t.Fatalf("oncall at %s: %d", at, code)
		}
		var out []string
		for _, u := range got.Users {
			out = append(out, fmt.Sprintf("%s:%v", u.ID, u.Reachable))
		}
		return out
	}
	if got, want := onCall(t0), []string{"u-off:false", "u-base:true"}; !slices.Equal(got, want) {
		t.Errorf("on call at t0: %q, want %q", got, want)
	}
	if got, want := onCall(t0.Add(2*time.Minute)), []string{"u-cover:true"}; !slices.Equal(got, want) {
		t.Errorf("on call at t0+2m: %q, want %q", got, want)
	}
	var e apiErr
	if code := sc.api.do("GET", "/api/v1/orgs/acme/rotas/duty/oncall?at=tomorrow", "", &e); code != 400 || e.Error.Field != "at" {
		t.Errorf("oncall at=tomorrow: %d %q, want 400 on at", code, e.Error.Field)
	}
	if code := sc.api.do("GET", "/api/v1/orgs/acme/rotas/nope", "", nil); code != 404 {
		t.Errorf("get unknown rota: %d, want 404", code)
	}

	if code := sc.api.do("PUT", "/api/v1/orgs/acme/escalation-policies/sos",
		`{"steps":[{"name":"on call","recipients":[{"rota":"duty"}],"wait":"3m","repeat":"1m"}]}`, nil); code != 200 {
		t.Fatalf("put policy: %d", code)
	}
	if code := sc.api.do("DELETE", "/api/v1/orgs/acme/rotas/duty", "", &e); code != 409 || e.Error.Field != "name" {
		t.Errorf("delete a rota the policy names: %d %q, want 409 on name", code, e.Error.Field)
	}

	sc.startSession(`{"person_id":"p1","preset":"low"}`)
	sc.button(event.ButtonSOS)
	sos := sc.wantAlert("sos")
	to := func(n int) []string {
		t.Helper()
		var out []string
		for _, m := range waitMails(t, sink, n) {
			out = append(out, strings.Join(m.to, ","))
		}
		return out
	}
	if got, want := to(1), []string{"base@example.org"}; !slices.Equal(got, want) {
		t.Fatalf("at 0: mails to %q, want %q", got, want)
	}
	ladderAt := func(attempt int) {
		t.Helper()
		eventually(t, fmt.Sprintf("the ladder at repeat %d", attempt), func() bool {
			x, err := st.GetEscalation(ctx, sos.ID)
			return err == nil && x.Attempt == attempt
		})
	}
	ladderAt(1)
	sc.at(time.Minute)
	if got, want := to(2), []string{"base@example.org", "base@example.org"}; !slices.Equal(got, want) {
		t.Fatalf("at 1m: mails to %q, want %q", got, want)
	}
	ladderAt(2)
	sc.at(2 * time.Minute)
	if got, want := to(3), []string{"base@example.org", "base@example.org", "cover@example.org"}; !slices.Equal(got, want) {
		t.Fatalf("at 2m: mails to %q, want %q", got, want)
	}

	// Overrides can be removed; the rota itself once no policy names it.
	if code := sc.api.do("DELETE", "/api/v1/orgs/acme/rotas/duty/overrides/"+ov.ID, "", nil); code != 204 {
		t.Errorf("delete override: %d", code)
	}
	if code := sc.api.do("DELETE", "/api/v1/orgs/acme/rotas/duty/overrides/"+ov.ID, "", nil); code != 404 {
		t.Errorf("delete override again: %d, want 404", code)
	}
	if code := sc.api.do("PUT", "/api/v1/orgs/acme/escalation-policies/sos", `{"steps":[{"recipients":[{"channel":"console"}],"wait":"1m"}]}`, nil); code != 200 {
		t.Fatalf("put policy: %d", code)
	}
	if code := sc.api.do("DELETE", "/api/v1/orgs/acme/rotas/duty", "", nil); code != 204 {
		t.Errorf("delete rota: %d", code)
	}
	var list struct{ Rotas []any }
	if code := sc.api.do("GET", "/api/v1/orgs/acme/rotas", "", &list); code != 200 || len(list.Rotas) != 0 {
		t.Errorf("list after delete: %d %d rotas", code, len(list.Rotas))
	}
	var actions []string
	recs, err := st.ListAudit(ctx, store.AuditFilter{OrgID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if strings.HasPrefix(r.Action, "rota.") {
			actions = append(actions, r.Action)
		}
	}
	if want := []string{"rota.put", "rota.override.add", "rota.override.delete", "rota.override.delete", "rota.delete"}; !slices.Equal(actions, want) {
		t.Errorf("audited %q, want %q", actions, want)
	}
}
