package console

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"vigil/internal/store"
)

func TestReportCSVSafe(t *testing.T) {
	for in, want := range map[string]string{"": "", "12": "12", "0.5": "0.5", "sos": "sos", "=1+1": "'=1+1", "+1": "'+1",
		"-1": "'-1", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx", "\rx": "'\rx", "a=b": "a=b"} {
		if got := repCSVSafe(in); got != want {
			t.Errorf("repCSVSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReportsCSVAndData: the CSV download is an attachment whose cells
// cannot run as formulas; the data endpoint is the API's report as JSON.
func TestReportsCSVAndData(t *testing.T) {
	w, _ := setWorld(t, setAnswers())
	tok := w.auth.session("acme", store.RoleAuditor, true)
	r := w.do(t, "GET", "/console/acme/reports/csv?month=2026-11", tok, nil)
	if r.code != 200 || r.hdr.Get("Content-Type") != "text/csv; charset=utf-8" ||
		r.hdr.Get("Content-Disposition") != `attachment; filename="vigil-response-acme-2026-11.csv"` || r.hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("csv: %d %v", r.code, r.hdr)
	}
	rows, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("csv rows %d %v:\n%s", len(rows), err, r.body)
	}
	if rows[0][0] != "month" || rows[1][3] != `'=HYPERLINK("http://evil")` || rows[2][3] != "total" || rows[2][4] != "1" {
		t.Errorf("csv:\n%s", r.body)
	}

	r = w.do(t, "GET", "/console/acme/reports/data?month=2026-11", tok, nil)
	var rep struct {
		Total struct {
			Alerts int `json:"alerts"`
		} `json:"total"`
	}
	if r.code != 200 || r.hdr.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(r.body), &rep) != nil || rep.Total.Alerts != 1 {
		t.Errorf("data: %d %v %s", r.code, r.hdr, r.body)
	}
	r = w.do(t, "GET", "/console/acme/reports?month=2026-11", tok, nil)
	if r.code != 200 || !strings.Contains(r.body, `href="/console/acme/reports/csv?month=2026-11"`) ||
		!strings.Contains(r.body, `=HYPERLINK(&#34;http://evil&#34;)`) || !strings.Contains(r.body, "<td>10 s</td><td>80 %</td><td>100 %</td>") {
		t.Errorf("reports page: %d\n%s", r.code, r.body)
	}
	ans := setAnswers()
	ans["GET /api/v1/orgs/acme/reports/response?month=2026-11&tz=Mars%2FBase"] = setCanned{400, `{"error":{"code":"invalid","field":"tz","message":"want an IANA time zone such as Europe/London"}}`}
	ans["GET /api/v1/orgs/acme/reports/response?month=2026-11&tz=Europe%2FLondon"] = ans["GET /api/v1/orgs/acme/reports/response?month=2026-11"]
	w, _ = setWorld(t, ans)
	tok = w.auth.session("acme", store.RoleAuditor, true)
	r = w.do(t, "GET", "/console/acme/reports?month=2026-11&tz=Mars/Base", tok, nil)
	if r.code != 400 || !strings.Contains(r.body, `id="err-tz">want an IANA time zone`) || !strings.Contains(r.body, `value="Mars/Base"`) {
		t.Errorf("bad zone: %d\n%s", r.code, r.body)
	}
	r = w.do(t, "GET", "/console/acme/reports?month=2026-11&tz=Europe/London", tok, nil)
	if r.code != 200 || !strings.Contains(r.body, `href="/console/acme/reports/csv?month=2026-11&amp;tz=Europe%2FLondon"`) ||
		!strings.Contains(r.body, `href="/console/acme/reports?month=2026-10&amp;tz=Europe%2FLondon"`) {
		t.Errorf("zone kept in links: %d\n%s", r.code, r.body)
	}
	if r := w.do(t, "GET", "/console/acme/reports/data?month=nope", tok, nil); r.code != 400 {
		t.Errorf("data of a bad month: %d", r.code)
	}
}
