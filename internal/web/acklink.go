package web

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"vigil/internal/alert"
	"vigil/internal/escalation"
	"vigil/internal/store"
)

// LinkVerifier checks an acknowledge link's token.
type LinkVerifier interface {
	Verify(token string, now time.Time) (alertID, recipient string, err error)
}

// AckAlerts is what the acknowledge page reads and does.
type AckAlerts interface {
	GetAlert(ctx context.Context, id string) (store.Alert, error)
}

// AckLink serves the signed acknowledge links sent in e-mail, SMS and
// webhooks: GET /ack/{token} shows the alert's kind, time and state and a
// button; POST /ack/{token} acknowledges it for the recipient the link was
// made for. A GET never acknowledges (mail scanners and link previews
// fetch links). The page carries no personal data: the recipient already
// has the details in the message.
type AckLink struct {
	links  LinkVerifier
	st     AckAlerts
	alerts Alerts
	log    *slog.Logger
	now    func() time.Time
}

// NewAckLink returns the acknowledge-link handler.
func NewAckLink(links LinkVerifier, st AckAlerts, alerts Alerts, log *slog.Logger, now func() time.Time) *AckLink {
	return &AckLink{links: links, st: st, alerts: alerts, log: log, now: now}
}

// Register adds the link's routes to mux.
func (h *AckLink) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /ack/{token}", h.show)
	mux.HandleFunc("POST /ack/{token}", h.acknowledge)
}

var ackPage = template.Must(template.New("ack").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Vigil alert</title></head>
<body>
<h1>{{.Title}}</h1>
{{if .Kind}}<p>Alert: <strong>{{.Kind}}</strong>, raised {{.Raised}} UTC. State: {{.State}}.</p>{{end}}
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{if .CanAck}}<form method="post"><button type="submit">Acknowledge: I am responding</button></form>{{end}}
</body></html>
`))

type ackView struct {
	Title, Kind, Raised, State, Message string
	CanAck                              bool
}

func (h *AckLink) render(w http.ResponseWriter, status int, v ackView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = ackPage.Execute(w, v)
}

func (h *AckLink) alert(w http.ResponseWriter, r *http.Request) (store.Alert, string, bool) {
	id, recipient, err := h.links.Verify(r.PathValue("token"), h.now())
	if err != nil {
		h.render(w, http.StatusNotFound, ackView{Title: "This link is not valid", Message: "It may have expired. Open the console instead."})
		return store.Alert{}, "", false
	}
	a, err := h.st.GetAlert(r.Context(), id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			h.log.Error("acknowledge link: alert not read", "err", err)
		}
		h.render(w, http.StatusNotFound, ackView{Title: "This link is not valid"})
		return store.Alert{}, "", false
	}
	return a, recipient, true
}

func view(a store.Alert) ackView {
	return ackView{Kind: a.Kind, Raised: a.RaisedAt.UTC().Format("2006-01-02 15:04:05"), State: string(a.State)}
}

func (h *AckLink) show(w http.ResponseWriter, r *http.Request) {
	a, _, ok := h.alert(w, r)
	if !ok {
		return
	}
	v := view(a)
	switch a.State {
	case store.AlertRaised:
		v.Title, v.CanAck = "Alert needs a responder", true
	case store.AlertAcknowledged:
		v.Title, v.Message = "Already acknowledged", "Someone is responding."
	default:
		v.Title = "This alert is closed"
	}
	h.render(w, http.StatusOK, v)
}

func (h *AckLink) acknowledge(w http.ResponseWriter, r *http.Request) {
	a, recipient, ok := h.alert(w, r)
	if !ok {
		return
	}
	got, err := h.alerts.Acknowledge(r.Context(), a.ID, "link:"+recipient, "acknowledged with the link sent to them")
	switch {
	case err == nil:
		v := view(got)
		v.Title, v.Message = "Acknowledged", "You are responding to this alert; everyone else has been told."
		h.render(w, http.StatusOK, v)
	case errors.Is(err, alert.ErrIllegal):
		v := view(a)
		v.Title, v.Message = "Not acknowledged", "The alert was already acknowledged or closed."
		h.render(w, http.StatusConflict, v)
	default:
		h.log.Error("acknowledge link failed", "err", err)
		h.render(w, http.StatusInternalServerError, ackView{Title: "Something went wrong", Message: "Open the console instead."})
	}
}

var _ LinkVerifier = (*escalation.Links)(nil)
