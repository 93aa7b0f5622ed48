// Package web serves Vigil's JSON API for people (the console and the
// worker app use it): timed sessions, alerts and their lifecycle, and
// geofences (zones) as GeoJSON. Every route is in routes.go; anything else
// is a JSON 404.
//
// Every route is behind authentication (a session cookie with a completed
// second factor, or an API token) and declares its permission in
// routes.go; objects of organisations the caller does not reach answer 404,
// a missing permission 403 (authz.go). Reads and changes of personal data
// are written to the audit log before they are served.
//
// Errors are classified in one place (classify) into a status and a JSON
// body naming the field; the log gets the chain. It imports the domain
// packages (safety, alert, geofence) and the store's record types; it must
// not import drivers, the bus or gateways.
package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"vigil/internal/alert"
	"vigil/internal/auth"
	"vigil/internal/escalation"
	"vigil/internal/geofence"
	"vigil/internal/safety"
	"vigil/internal/store"
)

// Engine is what the API needs of the safety engine.
type Engine interface {
	StartSession(ctx context.Context, r safety.StartRequest) (safety.StartResult, error)
	CheckIn(ctx context.Context, sessionID, by string) (store.Session, error)
	Extend(ctx context.Context, sessionID string, end time.Time, by string) (store.Session, error)
	End(ctx context.Context, sessionID, by string) (store.Session, error)
	Presets(ctx context.Context, orgID string) ([]safety.Preset, error)
	ReloadFences(ctx context.Context, orgID string) error
}

// Alerts is the alert lifecycle.
type Alerts interface {
	Acknowledge(ctx context.Context, id, by, note string) (store.Alert, error)
	Resolve(ctx context.Context, id, by, outcome, note string) (store.Alert, error)
	Cancel(ctx context.Context, id, by, code string) (store.Alert, error)
}

// Store is what the API reads and writes directly.
type Store interface {
	GetOrg(ctx context.Context, id string) (store.Org, error)
	GetAlert(ctx context.Context, id string) (store.Alert, error)
	ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	GetSession(ctx context.Context, id string) (store.Session, error)
	ListSessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error)
	PutGeofence(ctx context.Context, g store.GeofenceRecord) error
	GetGeofence(ctx context.Context, id string) (store.GeofenceRecord, error)
	ListGeofences(ctx context.Context, orgID string) ([]store.GeofenceRecord, error)
	DeleteGeofence(ctx context.Context, id string) error
	PutSessionPreset(ctx context.Context, p store.SessionPreset) error
	PutEscalationPolicy(ctx context.Context, orgID, kind, policy string, at time.Time) error
	ListEscalationPolicies(ctx context.Context, orgID string) (map[string]string, error)
	ListDeliveries(ctx context.Context, alertID string) ([]store.Delivery, error)
}

// API is the JSON API.
type API struct {
	eng    Engine
	alerts Alerts
	st     Store
	log    *slog.Logger
	now    func() time.Time

	feedHandler http.Handler // the organisations' live feeds; nil: not running
	auth        *auth.Service
	audit       Auditor
	dir         Directory
	enroller    Enroller
	revoker     DeviceRevoker
	photoSem    chan struct{} // image decodes in flight (each up to ~80 MB)
}

// Directory is the organisations' people, users, teams and credentials as
// the API reads and changes them directly.
type Directory interface {
	CreateOrg(ctx context.Context, o store.Org) error
	SetOrgRequireWebAuthn(ctx context.Context, orgID string, on bool) error
	GetUser(ctx context.Context, id string) (store.User, error)
	ListUsers(ctx context.Context, orgID string) ([]store.User, error)
	ListMemberships(ctx context.Context, userID string) ([]store.Membership, error)
	PutMembership(ctx context.Context, m store.Membership) error
	ListAPITokens(ctx context.Context, orgID string) ([]store.APIToken, error)

	// People, their contacts, carers and devices; teams; the audit log.
	CreatePerson(ctx context.Context, p store.Person) error
	GetPerson(ctx context.Context, id string) (store.Person, error)
	ListPeople(ctx context.Context, orgID string) ([]store.Person, error)
	SetPersonNotes(ctx context.Context, personID, notes string) error
	GetPersonNotes(ctx context.Context, personID string) (string, error)
	PutContact(ctx context.Context, c store.Contact) error
	GetContact(ctx context.Context, id string) (store.Contact, error)
	ListContacts(ctx context.Context, personID string) ([]store.Contact, error)
	DeleteContact(ctx context.Context, id string) error
	LinkCarer(ctx context.Context, userID, personID string) error
	UnlinkCarer(ctx context.Context, userID, personID string) error
	GetDevice(ctx context.Context, id string) (store.Device, error)
	ListDevices(ctx context.Context, orgID string) ([]store.Device, error)
	AssignDevice(ctx context.Context, deviceID, personID string) error
	CreateTeam(ctx context.Context, t store.Team) error
	GetTeam(ctx context.Context, id string) (store.Team, error)
	ListTeams(ctx context.Context, orgID string) ([]store.Team, error)
	AddTeamMember(ctx context.Context, teamID, userID string) error
	RemoveTeamMember(ctx context.Context, teamID, userID string) error
	DeleteTeam(ctx context.Context, id string) error
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
}

// SetAuth sets who may call the API, where personal-data access is
// recorded, and the directory of users. Without it every route but the
// public ones answers 401.
func (a *API) SetAuth(s *auth.Service, aud Auditor, dir Directory) {
	a.auth, a.audit, a.dir = s, aud, dir
}

// SetFeed serves the organisations' live alert feeds with h (GET
// /api/v1/orgs/{org}/feed; h reads the org from the path). Call it before
// Handler.
func (a *API) SetFeed(h http.Handler) { a.feedHandler = h }

// NewAPI returns the API.
func NewAPI(eng Engine, alerts Alerts, st Store, log *slog.Logger, now func() time.Time) *API {
	return &API{eng: eng, alerts: alerts, st: st, log: log, now: now, photoSem: make(chan struct{}, 2)}
}

// maxBody bounds a request body; zones imports are the largest.
const (
	maxBody     = 64 << 10
	maxZoneBody = 32 << 20
)

type apiError struct {
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// writeError writes the one JSON error shape every Vigil API uses.
func writeError(w http.ResponseWriter, status int, code, field, msg string) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	rid := hex.EncodeToString(b)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", rid)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]apiError{"error": {Code: code, Field: field, Message: msg, RequestID: rid}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail classifies err into a status and a safe message; only a 500 is
// logged (with the chain).
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *safety.FieldError
	var ge *geofence.Error
	var pe *escalation.FieldError
	switch {
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, "invalid", fe.Field, fe.Msg)
	case errors.As(err, &pe):
		writeError(w, http.StatusBadRequest, "invalid", pe.Field, pe.Msg)
	case errors.As(err, &ge):
		writeError(w, http.StatusBadRequest, "invalid", ge.Field, ge.Error())
	case errors.Is(err, alert.ErrOutcome):
		writeError(w, http.StatusBadRequest, "invalid", "outcome", "want false_alarm, assisted, emergency_services, or other with a note")
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "", "no such object")
	case errors.Is(err, safety.ErrActiveSession):
		writeError(w, http.StatusConflict, "active_session", "person_id", "the person already has an active session")
	case errors.Is(err, safety.ErrSessionEnded):
		writeError(w, http.StatusConflict, "session_ended", "", "the session has ended")
	case errors.Is(err, alert.ErrCancelWindow):
		writeError(w, http.StatusConflict, "cancel_window_passed", "", "the cancel window has passed; a supervisor resolves the alert")
	case errors.Is(err, alert.ErrIllegal):
		writeError(w, http.StatusConflict, "illegal_transition", "", safeIllegal(err))
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "", "changed by someone else meanwhile; try again")
	default:
		a.log.Error("api request failed", "method", r.Method, "pattern", r.Pattern, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "", "internal error")
	}
}

// safeIllegal is the lifecycle's message: it names states and actors
// (user ids), never personal data.
func safeIllegal(err error) string { return err.Error() }

// decode reads a JSON body strictly: one object, known fields only, at
// most limit bytes, Content-Type application/json.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) (field, msg string, ok bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "application/geo+json") {
			return "", "Content-Type must be application/json", false
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return "", "body too large or unreadable", false
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return ute.Field, "wrong type, want " + ute.Type.String(), false
		}
		if f, ok := unknownField(err); ok {
			return f, "unknown field", false
		}
		return "", "malformed JSON", false
	}
	if dec.More() {
		return "", "trailing data after the JSON object", false
	}
	return "", "", true
}

func (a *API) bad(w http.ResponseWriter, field, msg string) {
	writeError(w, http.StatusBadRequest, "invalid", field, msg)
}

// duration is a JSON duration: a Go duration string ("30m") or seconds.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return &json.UnmarshalTypeError{Value: "string", Type: durationType}
		}
		*d = duration(v)
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return &json.UnmarshalTypeError{Value: "value", Type: durationType}
	}
	*d = duration(time.Duration(n * float64(time.Second)))
	return nil
}

func limitParam(r *http.Request) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 0, true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0 && n <= 1000
}
