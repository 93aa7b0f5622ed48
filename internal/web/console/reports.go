package console

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"vigil/internal/auth"
	"vigil/internal/report"
)

// reportRoutes are the console's routes of this page family (see routes):
// the monthly response report (tables, charts, CSV) and the audit log
// browser. Both read through the JSON API (apiCall).
var reportRoutes = []route{
	{"GET /console/{org}/reports", false, func(c *Console) http.HandlerFunc { return c.reportsPage }},
	{"GET /console/{org}/reports/data", false, func(c *Console) http.HandlerFunc { return c.reportData }},
	{"GET /console/{org}/reports/csv", false, func(c *Console) http.HandlerFunc { return c.reportCSV }},
	{"GET /console/{org}/audit", false, func(c *Console) http.HandlerFunc { return c.auditPage }},
}

// reportsStore is what this page family reads from the store directly (most
// pages go through apiCall instead); part of Store.
type reportsStore interface{}

// repStatsRow is one kind's (or the total's) numbers as the page shows
// them.
type repStatsRow struct {
	Kind                                             string
	Alerts, Raised, Cancelled, Acked, Resolved, Open int
	FalseAlarms                                      int
	FalseRate                                        string
	Within                                           []string // share per limit
	Receive, Present, Acknowledge, Resolve           string   // p50 / p90 / p99 (n)
	BS8484, Telecare                                 string   // met, not met, -
	TotalRow                                         bool
}

// repTargetRow is one target of the total.
type repTargetRow struct {
	Standard, Within, Want, Got, Verdict string
	Met                                  bool
}

type reportsView struct {
	Nav      Nav
	Org      string
	Month    string
	TZ       string
	TZError  string // the time zone field's error
	Prev     string // the month before, for a link
	Next     string
	PrevURL  string
	NextURL  string
	Error    string // the month field's error
	Has      bool   // a report was computed
	From, To string
	Limits   []string
	Rows     []repStatsRow
	Targets  []repTargetRow
	Raised   int
	DataURL  string
	CSVURL   string
}

// repMonth is the month asked for, the current one (UTC) by default.
func repMonth(r *http.Request) string {
	if m := strings.TrimSpace(r.URL.Query().Get("month")); m != "" {
		return m
	}
	return time.Now().UTC().Format("2006-01")
}

// loadReport asks the API for org's report of month; e is the API's
// refusal (a bad month is 400 naming "month").
func (c *Console) loadReport(r *http.Request, org, month string) (report.Report, *APIError, error) {
	var rep report.Report
	e, err := c.apiCall(r, http.MethodGet, setOrgPath(org, "/reports/response"+repQuery(month, repTZ(r))), nil, &rep)
	return rep, e, err
}

// repTZ is the time zone asked for ("" is the API's default, UTC).
func repTZ(r *http.Request) string { return strings.TrimSpace(r.URL.Query().Get("tz")) }

// repQuery is the query of a report's URLs.
func repQuery(month, tz string) string {
	q := "?month=" + url.QueryEscape(month)
	if tz != "" {
		q += "&tz=" + url.QueryEscape(tz)
	}
	return q
}

func repPercent(v *float64) string {
	if v == nil {
		return "–"
	}
	return strconv.FormatFloat(*v*100, 'f', -1, 64) + " %"
}

func repRound(v *float64) *float64 {
	if v == nil {
		return nil
	}
	x := float64(int64(*v*1000+0.5)) / 1000
	return &x
}

// repLimit is a limit in whole seconds ("60 s").
func repLimit(s report.Seconds) string {
	return strconv.Itoa(int(time.Duration(s)/time.Second)) + " s"
}

func repSecs(s *report.Seconds) string {
	if s == nil {
		return "–"
	}
	return time.Duration(*s).Round(time.Millisecond).String()
}

func repQuantiles(q report.Quantiles) string {
	if q.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%s / %s / %s (%d)", repSecs(q.P50), repSecs(q.P90), repSecs(q.P99), q.N)
}

func repVerdict(b *bool) string {
	switch {
	case b == nil:
		return "–"
	case *b:
		return "met"
	}
	return "not met"
}

func repRow(s report.Stats) repStatsRow {
	row := repStatsRow{Kind: s.Kind, Alerts: s.Alerts, Raised: s.Raised, Cancelled: s.Cancelled, Acked: s.Acknowledged,
		Resolved: s.Resolved, Open: s.Open, FalseAlarms: s.FalseAlarms, FalseRate: repPercent(repRound(s.FalseAlarmRate)),
		Receive: repQuantiles(s.TimeToReceive), Present: repQuantiles(s.TimeToPresent), Acknowledge: repQuantiles(s.TimeToAcknowledge),
		Resolve: repQuantiles(s.TimeToResolve), BS8484: repVerdict(s.Met(report.StandardBS8484)), Telecare: repVerdict(s.Met(report.StandardTelecare))}
	for _, w := range s.AcknowledgedWithin {
		row.Within = append(row.Within, repPercent(repRound(w.Share)))
	}
	return row
}

// repMonthStep is the month before (-1) or after (+1) m, "" if m is not a
// month.
func repMonthStep(m string, by int) string {
	t, err := time.Parse("2006-01", m)
	if err != nil {
		return ""
	}
	return t.AddDate(0, by, 0).Format("2006-01")
}

func (c *Console) reportsPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.ReportsRead)
	if !ok {
		return
	}
	month := repMonth(r)
	v := reportsView{Nav: nav(p, org, "reports"), Org: org, Month: month, TZ: repTZ(r), Prev: repMonthStep(month, -1), Next: repMonthStep(month, 1)}
	if v.Prev != "" {
		v.PrevURL, v.NextURL = "/console/"+org+"/reports"+repQuery(v.Prev, v.TZ), "/console/"+org+"/reports"+repQuery(v.Next, v.TZ)
	}
	rep, e, err := c.loadReport(r, org, month)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		if c.setRefused(w, r, e) {
			return
		}
		if e.Field == "tz" {
			v.TZError = e.Message
		} else {
			v.Error = e.Message
		}
		c.render(w, e.Status, "reports.html", v)
		return
	}
	q := repQuery(month, v.TZ)
	v.Has, v.DataURL, v.CSVURL = true, "/console/"+org+"/reports/data"+q, "/console/"+org+"/reports/csv"+q
	v.From, v.To = rep.From.Format("2006-01-02 15:04 MST"), rep.To.Format("2006-01-02 15:04 MST")
	for _, l := range report.Limits() {
		v.Limits = append(v.Limits, repLimit(report.Seconds(l)))
	}
	for _, s := range rep.Kinds {
		v.Rows = append(v.Rows, repRow(s))
	}
	total := repRow(rep.Total)
	total.TotalRow = true
	v.Rows = append(v.Rows, total)
	v.Raised = rep.Total.Raised
	for _, t := range rep.Total.Targets {
		met := t.Met != nil && *t.Met
		want := t.Want
		v.Targets = append(v.Targets, repTargetRow{Standard: t.Standard, Within: repLimit(t.Within),
			Want: repPercent(&want), Got: repPercent(repRound(t.Got)), Verdict: repVerdict(t.Met), Met: met})
	}
	c.render(w, http.StatusOK, "reports.html", v)
}

// reportData is the report as JSON for static/reports.js (the charts).
func (c *Console) reportData(w http.ResponseWriter, r *http.Request) {
	_, org, ok := c.adminAccess(w, r, auth.ReportsRead)
	if !ok {
		return
	}
	rep, e, err := c.loadReport(r, org, repMonth(r))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return
	}
	b, err := json.Marshal(rep)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

// repCSVSafe defuses a cell a spreadsheet would run as a formula (CSV
// injection): one starting with = + - @, a tab or a carriage return gets
// a leading apostrophe. Numbers stay numbers (no report number is
// negative).
func repCSVSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// reportCSV streams the report as CSV (the columns of docs/reports.md),
// an attachment, every cell defused.
func (c *Console) reportCSV(w http.ResponseWriter, r *http.Request) {
	_, org, ok := c.adminAccess(w, r, auth.ReportsRead)
	if !ok {
		return
	}
	rep, e, err := c.loadReport(r, org, repMonth(r))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return
	}
	var raw bytes.Buffer
	if err := report.WriteCSV(&raw, rep); err != nil {
		c.fail(w, r, err)
		return
	}
	rd := csv.NewReader(&raw)
	rd.FieldsPerRecord = -1
	rows, err := rd.ReadAll()
	if err != nil {
		c.fail(w, r, err)
		return
	}
	var out bytes.Buffer
	cw := csv.NewWriter(&out)
	for _, row := range rows {
		for i := range row {
			row[i] = repCSVSafe(row[i])
		}
		_ = cw.Write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		c.fail(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/csv; charset=utf-8")
	hd.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="vigil-response-%s-%s.csv"`, repSafeName(org), repSafeName(rep.Month)))
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(out.Bytes())
}

// repSafeName keeps a-z, 0-9 and - of s (a file name in a header).
func repSafeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, s)
}
