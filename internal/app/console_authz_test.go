package app_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"vigil/internal/auth"
	"vigil/internal/store"
	"vigil/internal/web"
	webconsole "vigil/internal/web/console"
)

// consoleObject maps a console path's {id} to the fixture object it names.
func consoleObject(pattern string) string {
	for seg, obj := range map[string]string{"/devices/{id}": "device", "/people/{id}": "person", "/teams/{id}": "team",
		"/alerts/{id}": "alert", "/users/{id}": "user", "/tokens/{id}": "token", "/zones/{id}": "zone"} {
		if strings.Contains(pattern, seg) {
			return obj
		}
	}
	return ""
}

// consoleCall requests a console route as caller: GET, or POST with an
// empty form; redirects are not followed.
func (w *authzWorld) consoleCall(caller, method, path string) int {
	w.t.Helper()
	var rd io.Reader
	if method == "POST" {
		rd = strings.NewReader(url.Values{}.Encode())
	}
	req, err := http.NewRequest(method, "https://"+w.a.Addr("https")+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	if method == "POST" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c := w.session(caller); c != "" {
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: c})
	}
	hc := *w.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := hc.Do(req.WithContext(ctx))
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") ||
		!strings.Contains(csp, "object-src 'none'") || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		w.t.Errorf("%s %s: security headers missing: %v", method, path, resp.Header)
	}
	return resp.StatusCode
}

// TestConsoleAuthorizationMatrix walks every console route of an
// organisation for every caller of the API's matrix and checks the answer
// against the console's permission table (webconsole.Routes): signed out
// → sign-in (303) or 401; another organisation's admin or provider → 404;
// a role without the permission → 403; person-scoped roles (worker,
// carer) reach only an alert of their own person, else 403 or 404; a role
// with the permission is let through (its answer may still be a
// validation error: the forms here are empty).
func TestConsoleAuthorizationMatrix(t *testing.T) {
	w := newAuthzWorld(t)
	walked := 0
	// A GET changes nothing (TestGetRoutesChangeNothing), so one fixture
	// per person serves every GET; each POST gets its own.
	shared := map[string]map[string]string{}
	for _, rt := range webconsole.Routes() {
		method, pattern, _ := strings.Cut(rt.Pattern, " ")
		if rt.Public || !strings.HasPrefix(pattern, "/console/{org}") {
			continue // sign-in, static, one's own account, the lock credential: their own tests
		}
		walked++
		for _, c := range callers {
			for _, person := range []string{"x-worker", "x-other"} {
				if person == "x-other" && c != "worker" && c != "carer" {
					continue
				}
				fx := shared[person]
				if method != "GET" || fx == nil {
					fx = w.fixture(person)
					if method == "GET" {
						shared[person] = fx
					}
				}
				path := pattern
				if obj := consoleObject(pattern); obj != "" {
					path = strings.Replace(path, "{id}", fx[obj], 1)
				}
				path = strings.NewReplacer("{org}", "x", "{kind}", "sos", "{contact}", fx["contact"], "{user}", fx["{user}"]).Replace(path)
				got := w.consoleCall(c, method, path)
				role := store.Role(c)
				can := true
				for _, p := range rt.Perms {
					can = can && auth.RoleCan(role, p)
				}
				scoped := role == store.RoleWorker || role == store.RoleCarer
				denied := got == 401 || got == 403 || got == 404 || (got == 303 && c == "anonymous")
				switch {
				case c == "anonymous":
					if got != 303 && got != 401 {
						t.Errorf("%s signed out: %d, want 303 to sign-in or 401", rt.Pattern, got)
					}
				case c == "other-org" || c == "other-provider":
					if got != 404 {
						t.Errorf("%s as %s: %d, want 404", rt.Pattern, c, got)
					}
				case scoped:
					own := consoleObject(pattern) == "alert" && person == "x-worker" && method == "GET" && can
					if own && denied {
						t.Errorf("%s as %s (own alert): %d, want allowed", rt.Pattern, c, got)
					}
					if !own && got != 403 && got != 404 {
						t.Errorf("%s as %s (person %s): %d, want 403 or 404", rt.Pattern, c, person, got)
					}
				case !can:
					if got != 403 {
						t.Errorf("%s as %s: %d, want 403 (needs %v)", rt.Pattern, c, got, rt.Perms)
					}
				default:
					if denied || got >= 500 {
						t.Errorf("%s as %s: %d, want allowed (has %v)", rt.Pattern, c, got, rt.Perms)
					}
				}
			}
		}
	}
	if walked < 50 {
		t.Errorf("walked %d console routes; the table lost some", walked)
	}
}
