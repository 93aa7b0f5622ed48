package sim

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// API is a client of the part of Vigil's JSON API (docs/safety.md) that a
// worker app uses: it starts and ends timed sessions, and imports the zone
// the simulated workers walk in. Like the device topics, the paths and the
// JSON shapes are spelled out here: the simulator is an outside client
// and must not import the server's packages.
//
// The API has no user authentication yet and listens on loopback only.
type API struct {
	base  string
	token string
	hc    *http.Client
}

// NewAPI returns a client of the JSON API at addr (host:port, TLS) that
// authenticates with an API token (`vigil token create`). tlsCfg trusts
// the server (nil: the system roots).
func NewAPI(addr, token string, tlsCfg *tls.Config) (*API, error) {
	if token == "" {
		return nil, fmt.Errorf("sim: the JSON API needs an API token (vigil token create --org ORG)")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("sim: API address %q: want host:port: %w", addr, err)
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr := &http.Transport{
		TLSClientConfig:     tlsCfg.Clone(),
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &API{base: "https://" + addr, token: token, hc: &http.Client{Transport: tr, Timeout: 15 * time.Second}}, nil
}

// Close drops idle connections.
func (a *API) Close() { a.hc.CloseIdleConnections() }

// APIError is an error answer of the API: its status and the error
// object's code, field and (safe) message.
type APIError struct {
	Status  int
	Code    string
	Field   string
	Message string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("sim: API answered %d %s", e.Status, e.Code)
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Temporary reports whether trying again later may help (a 5xx, 408 or
// 429), as opposed to a refusal.
func (e *APIError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests
}

// Session is a session as the API shows it (the fields the simulator
// reads).
type Session struct {
	ID             string     `json:"id"`
	PersonID       string     `json:"person_id"`
	DeviceID       string     `json:"device_id"`
	State          string     `json:"state"`
	StartedAt      time.Time  `json:"started_at"`
	ExpectedEnd    time.Time  `json:"expected_end"`
	LastCheckin    time.Time  `json:"last_checkin"`
	NextCheckinDue *time.Time `json:"next_checkin_due"`
	Warnings       []string   `json:"warnings"`
}

// StartSession is a session to start: for the person, on their device,
// with a duration, a check-in interval (0: none) and a grace. The note
// (where, who, what risk) is personal data: never logged.
type StartSession struct {
	PersonID        string
	DeviceID        string
	Duration        time.Duration
	CheckinInterval time.Duration
	Grace           time.Duration
	Note            string
}

// StartSession starts a session (POST /api/v1/sessions). A person who
// already has an active session gets an *APIError with Code
// "active_session".
func (a *API) StartSession(ctx context.Context, r StartSession) (Session, error) {
	body := struct {
		PersonID        string `json:"person_id"`
		DeviceID        string `json:"device_id,omitempty"`
		Duration        string `json:"duration"`
		CheckinInterval string `json:"checkin_interval"`
		Grace           string `json:"grace"`
		Note            string `json:"note,omitempty"`
	}{r.PersonID, r.DeviceID, r.Duration.String(), r.CheckinInterval.String(), r.Grace.String(), r.Note}
	var s Session
	err := a.do(ctx, http.MethodPost, "/api/v1/sessions", nil, body, &s)
	return s, err
}

// ActiveSessions lists a person's active sessions.
func (a *API) ActiveSessions(ctx context.Context, personID string) ([]Session, error) {
	var out struct {
		Sessions []Session `json:"sessions"`
	}
	q := url.Values{"person": {personID}, "active": {"true"}}
	err := a.do(ctx, http.MethodGet, "/api/v1/sessions", q, nil, &out)
	return out.Sessions, err
}

// EndSession ends a session. One that has ended already gets an
// *APIError with Code "session_ended".
func (a *API) EndSession(ctx context.Context, id string) (Session, error) {
	var s Session
	err := a.do(ctx, http.MethodPost, "/api/v1/sessions/"+url.PathEscape(id)+"/end", nil, struct{}{}, &s)
	return s, err
}

// ImportZones imports a GeoJSON document of zones into an organisation
// (a feature with an id replaces that zone) and returns how many.
func (a *API) ImportZones(ctx context.Context, org string, geojson []byte) (int, error) {
	var out struct {
		Imported int `json:"imported"`
	}
	err := a.do(ctx, http.MethodPost, "/api/v1/orgs/"+url.PathEscape(org)+"/zones", nil, json.RawMessage(geojson), &out)
	return out.Imported, err
}

// do sends one request; a non-2xx answer is an *APIError.
func (a *API) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := a.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("sim: API %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("sim: API %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("sim: API %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("sim: API %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e) // the status is what counts
		return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Field: e.Error.Field, Message: e.Error.Message}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("sim: API %s %s: answer: %w", method, path, err)
		}
	}
	return nil
}

// CircleZone is a GeoJSON FeatureCollection of one must_stay_inside
// circle (a Point with properties.radius_m, dwell 30 s) around centre
// (lat, lon), for the API's zone import or `vigil zones import`. With an
// id, importing it again replaces the zone.
func CircleZone(id, name string, centre [2]float64, radiusM float64) []byte {
	type props struct {
		Name    string  `json:"name,omitempty"`
		Rule    string  `json:"rule"`
		RadiusM float64 `json:"radius_m"`
		DwellS  int     `json:"dwell_s"`
	}
	type geometry struct {
		Type        string     `json:"type"`
		Coordinates [2]float64 `json:"coordinates"`
	}
	type feature struct {
		Type       string   `json:"type"`
		ID         string   `json:"id,omitempty"`
		Geometry   geometry `json:"geometry"`
		Properties props    `json:"properties"`
	}
	doc := struct {
		Type     string    `json:"type"`
		Features []feature `json:"features"`
	}{"FeatureCollection", []feature{{
		Type:       "Feature",
		ID:         id,
		Geometry:   geometry{"Point", [2]float64{centre[1], centre[0]}},
		Properties: props{Name: name, Rule: "must_stay_inside", RadiusM: radiusM, DwellS: 30},
	}}}
	b, _ := json.Marshal(doc) // cannot fail for these types
	return b
}

// isAPI reports whether err is an API answer with one of the codes.
func isAPI(err error, codes ...string) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.Code == c {
			return true
		}
	}
	return false
}
