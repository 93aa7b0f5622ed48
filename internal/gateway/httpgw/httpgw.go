// Package httpgw is the HTTPS device API for phone apps and HTTP-capable
// trackers: POST /api/v1/devices/{id}/events with the device's bearer secret
// and a batch of events. The whole batch is validated first (all or nothing),
// then every event is made durable, and only then does the client get 200.
// Store-and-forward batches keep their original timestamps (flagged late)
// and are never dropped for their age.
//
// Every route is in routes(); anything else is 404. EnrolHandler
// (enrol.go) serves device enrolment, POST /api/v1/enrol, registered by
// internal/app next to them. It must not import store,
// safety, alert or bus: its dependencies are the interfaces below.
package httpgw

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/clock"
	"vigil/internal/event"
)

// Authenticator checks a device's credentials and returns its organisation.
// ok is false for an unknown device, a wrong secret or a disabled device
// (the client is not told which); err is for a failure to check at all.
type Authenticator interface {
	AuthenticateDevice(ctx context.Context, deviceID, secret string) (orgID string, ok bool, err error)
}

// Publisher makes a batch of events durable; nil means every one of them
// will survive a crash.
type Publisher interface {
	PublishEvents(ctx context.Context, evs []event.Event) error
}

// Config tunes the API. Zero values take defaults.
type Config struct {
	PublishTimeout time.Duration // default 15s
}

// Gateway serves the device API.
type Gateway struct {
	cfg  Config
	auth Authenticator
	pub  Publisher
	dec  *event.Decoder
	clk  clock.Clock
	log  *slog.Logger

	requests *prometheus.CounterVec
	accepted prometheus.Counter
}

// New builds the gateway.
func New(cfg Config, auth Authenticator, pub Publisher, dec *event.Decoder, clk clock.Clock, log *slog.Logger, reg prometheus.Registerer) *Gateway {
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 15 * time.Second
	}
	g := &Gateway{cfg: cfg, auth: auth, pub: pub, dec: dec, clk: clk, log: log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_http_device_requests_total", Help: "Device API requests by status code.",
		}, []string{"code"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_http_events_accepted_total", Help: "Events made durable through the HTTPS device API.",
		}),
	}
	if reg != nil {
		reg.MustRegister(g.requests, g.accepted)
	}
	return g
}

// Route is one entry of the route table.
type Route struct {
	Pattern string // method and path, as http.ServeMux takes it
	Public  bool   // reachable without credentials
	Handler http.HandlerFunc
}

// Routes is the device API's whole route table; tests walk it.
func (g *Gateway) Routes() []Route {
	return []Route{
		{Pattern: "POST /api/v1/devices/{id}/events", Handler: g.postEvents},
	}
}

// Register adds the routes to mux.
func (g *Gateway) Register(mux *http.ServeMux) {
	for _, r := range g.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
}

// apiError is the JSON error body. Message is safe for the client; it never
// contains submitted values.
type apiError struct {
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// WriteError writes a JSON error; other handlers on the listener use it too
// so every error body has one shape.
func WriteError(w http.ResponseWriter, status int, code, field, msg string) {
	rid := requestID()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", rid)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]apiError{"error": {Code: code, Field: field, Message: msg, RequestID: rid}})
}

func requestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type acceptedBody struct {
	Accepted int `json:"accepted"`
}

func (g *Gateway) fail(w http.ResponseWriter, status int, code, field, msg string) {
	g.requests.WithLabelValues(fmt.Sprint(status)).Inc()
	WriteError(w, status, code, field, msg)
}

func (g *Gateway) postEvents(w http.ResponseWriter, r *http.Request) {
	deviceID := r.PathValue("id")
	secret, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-devices"`)
		g.fail(w, http.StatusUnauthorized, "unauthorized", "", "missing bearer credentials")
		return
	}
	orgID, ok, err := g.auth.AuthenticateDevice(r.Context(), deviceID, secret)
	if err == nil && !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-devices", error="invalid_token"`)
		g.fail(w, http.StatusUnauthorized, "unauthorized", "", "unknown device or wrong credentials")
		return
	}
	if err != nil {
		g.log.Error("device authentication failed", "device_id", deviceID, "err", err)
		w.Header().Set("Retry-After", "5")
		g.fail(w, http.StatusServiceUnavailable, "unavailable", "", "try again later")
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		g.fail(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type", "Content-Type must be application/json")
		return
	}
	limit := int64(g.dec.Limits().MaxBatchBytes)
	if r.ContentLength > limit {
		// Refused from the header: not one byte of the body is read.
		g.fail(w, http.StatusRequestEntityTooLarge, "too_large", "", fmt.Sprintf("body larger than %d bytes", limit))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			g.fail(w, http.StatusRequestEntityTooLarge, "too_large", "", fmt.Sprintf("body larger than %d bytes", limit))
			return
		}
		g.fail(w, http.StatusBadRequest, "bad_request", "", "could not read body")
		return
	}
	evs, err := g.dec.DecodeBatch(body, event.Origin{OrgID: orgID, DeviceID: deviceID, Source: event.SourceHTTP}, g.clk.Now())
	if err != nil {
		var fe *event.FieldError
		status, code := http.StatusBadRequest, "invalid_event"
		if errors.Is(err, event.ErrTooLarge) {
			status, code = http.StatusRequestEntityTooLarge, "too_large"
		}
		field, msg := "", "invalid event batch"
		if errors.As(err, &fe) {
			field, msg = fe.Field, fe.Reason
		}
		g.fail(w, status, code, field, msg)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.PublishTimeout)
	defer cancel()
	if err := g.pub.PublishEvents(ctx, evs); err != nil {
		g.log.Error("durable publish failed", "device_id", deviceID, "events", len(evs), "err", err)
		w.Header().Set("Retry-After", "5")
		g.fail(w, http.StatusServiceUnavailable, "unavailable", "", "events not stored; send the same batch again")
		return
	}
	g.accepted.Add(float64(len(evs)))
	g.requests.WithLabelValues("200").Inc()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(acceptedBody{Accepted: len(evs)})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}
