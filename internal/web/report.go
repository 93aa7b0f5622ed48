package web

import (
	"net/http"

	"vigil/internal/report"
)

// responseReport is an organisation's response-time statistics for one
// calendar month (?month=2026-11, required; ?tz=Europe/London, default
// UTC): the report.Report as JSON (docs/reports.md).
func (a *API) responseReport(w http.ResponseWriter, r *http.Request) {
	org, q := r.PathValue("org"), r.URL.Query()
	loc, err := report.Zone(q.Get("tz"))
	if err != nil {
		a.bad(w, "tz", "want an IANA time zone such as Europe/London")
		return
	}
	p, err := report.ParseMonth(q.Get("month"), loc)
	if err != nil {
		a.bad(w, "month", "want a month as YYYY-MM, e.g. 2026-11")
		return
	}
	if _, err := a.st.GetOrg(r.Context(), org); err != nil {
		a.fail(w, r, err)
		return
	}
	facts, err := report.Collect(r.Context(), a.st, org, p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, report.Compute(org, p, facts))
}
