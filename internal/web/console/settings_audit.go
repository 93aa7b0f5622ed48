package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"vigil/internal/auth"
)

// auditItem is one entry as GET /api/v1/orgs/{org}/audit answers it.
type auditItem struct {
	Seq        int64           `json:"seq"`
	At         time.Time       `json:"at"`
	Actor      string          `json:"actor"`
	SourceIP   string          `json:"source_ip"`
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id"`
	Outcome    string          `json:"outcome"`
	Severity   string          `json:"severity"`
	Details    json.RawMessage `json:"details"`
	Hash       string          `json:"hash"`
}

// auditKV is one detail of an entry.
type auditKV struct{ Key, Value string }

// auditRow is one entry as the page shows it: every string is text for
// html/template to escape (security row 27).
type auditRow struct {
	auditItem
	Details []auditKV
	Raw     string // details that are not an object of strings
}

// auditFilter is the browse's query.
type auditFilter struct {
	Actor, Action string
	After         string
	Limit         string
}

type auditView struct {
	Nav     Nav
	Org     string
	Filter  auditFilter
	Rows    []auditRow
	Errors  setErrors
	NextURL string
	Newest  bool // the last page: nothing after it yet
}

// auditDetails splits an entry's details into sorted key/value pairs.
func auditDetails(raw json.RawMessage) ([]auditKV, string) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, string(raw)
	}
	var kv []auditKV
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		kv = append(kv, auditKV{k, s})
	}
	slices.SortFunc(kv, func(a, b auditKV) int { return strings.Compare(a.Key, b.Key) })
	return kv, ""
}

// auditQuery is the browse's query string for f after seq.
func auditQuery(f auditFilter, after string) string {
	q := url.Values{}
	for k, v := range map[string]string{"actor": f.Actor, "action": f.Action, "limit": f.Limit, "after": after} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// auditPage browses the organisation's audit log (audit.read), oldest
// first, with the API's filters (actor, action) and paging (after,
// limit); the browse itself is audited by the API.
func (c *Console) auditPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.AuditRead)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := auditFilter{Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")),
		After: strings.TrimSpace(q.Get("after")), Limit: strings.TrimSpace(q.Get("limit"))}
	v := auditView{Nav: nav(p, org, "audit"), Org: org, Filter: f, Errors: setErrors{}}
	var out struct {
		Entries   []auditItem `json:"entries"`
		NextAfter int64       `json:"next_after"`
	}
	e, err := c.apiCall(r, http.MethodGet, setOrgPath(org, "/audit"+auditQuery(f, f.After)), nil, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		if c.setRefused(w, r, e) {
			return
		}
		v.Errors.fromAPI(e, "actor", "action", "after", "limit")
		c.render(w, e.Status, "audit.html", v)
		return
	}
	for _, it := range out.Entries {
		kv, raw := auditDetails(it.Details)
		v.Rows = append(v.Rows, auditRow{auditItem: it, Details: kv, Raw: raw})
	}
	limit := 100
	if n, err := strconv.Atoi(f.Limit); err == nil {
		limit = n
	}
	if len(out.Entries) >= limit {
		v.NextURL = "/console/" + url.PathEscape(org) + "/audit" + auditQuery(f, strconv.FormatInt(out.NextAfter, 10))
	} else {
		v.Newest = true
	}
	c.render(w, http.StatusOK, "audit.html", v)
}
