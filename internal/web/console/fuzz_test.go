package console

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzPublicForms feeds the console's routes that answer before sign-in
// (the sign-in form, the sign-in page, static files, the locked
// console's alarms) and the second-factor forms without a session with
// arbitrary bodies, queries and paths: no panic, no 5xx, and a session
// only for the right password.
func FuzzPublicForms(f *testing.F) {
	for _, s := range []string{"email=ada%40example.org&password=wrong", "email=&password=", "code=123456", "%zz", "email=" + strings.Repeat("a", 9000),
		"email=ada%40example.org&email=x&password=pw2", "password=\x00", ""} {
		f.Add(s, "acme")
	}
	f.Fuzz(func(t *testing.T, body, seg string) {
		w := newWorld(t)
		paths := []string{"POST /console/login", "POST /console/totp", "POST /console/recovery", "POST /console/enrol/totp",
			"POST /console/enrol/totp/confirm", "GET /", "GET /static/" + url.PathEscape(seg),
			"GET /console/" + url.PathEscape(seg) + "/locked/alarms", "GET /console/" + url.PathEscape(seg)}
		for _, p := range paths {
			method, path, _ := strings.Cut(p, " ")
			r := httptest.NewRequest(method, "https://vigil.example"+path+"?"+url.PathEscape(seg), strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			rec := httptest.NewRecorder()
			w.h.ServeHTTP(rec, r)
			if rec.Code >= 500 {
				t.Fatalf("%s: %d %s", p, rec.Code, rec.Body)
			}
			form, _ := url.ParseQuery(body)
			right := form.Get("email") == "ada@example.org" && form.Get("password") == "pw"
			for _, c := range rec.Result().Cookies() {
				if c.Name == sessionCookie && c.Value != "" && !(p == "POST /console/login" && right) {
					t.Fatalf("%s handed out a session for %q", p, body)
				}
			}
		}
	})
}
