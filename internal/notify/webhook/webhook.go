// Package webhook is the webhook channel: a notify.Notifier that POSTs a
// signed JSON document about an alert (schema "vigil.alert.v1", see
// Payload) to a receiver's URL, and Verify, the reference check a receiver
// runs on it.
//
// Every request carries three headers:
//
//	Vigil-Delivery:  the delivery id, the same on every retry (and in the
//	                 body as delivery_id, where the signature covers it)
//	Vigil-Timestamp: unix seconds when this attempt was signed
//	Vigil-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//
// A receiver checks the signature in constant time and rejects a timestamp
// more than a window (5 minutes) away from its clock, so a captured
// request cannot be replayed later; within the window it de-duplicates on
// delivery_id. The signing secret is per target and comes from a
// SecretFunc; it is never logged or put in an error.
//
// Delivery is retried with exponential backoff and full jitter on 408, 429
// (honouring Retry-After), 5xx, timeouts and network errors, up to
// Config.MaxAttempts tries and Config.MaxElapsed; any other status, a
// redirect, or a destination refused by the outbound policy fails at once
// and is wrapped with notify.Permanent. Every final failure is a
// *DeadLetter the caller can record. The waits between tries go through the
// Clock's timers, so tests run them in virtual time.
//
// All HTTP goes through an internal/notify/outbound client (SSRF-safe). It
// must not import store, bus, safety or app. A Notifier is safe for
// concurrent use and starts no goroutines.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"vigil/internal/clock"
	"vigil/internal/notify"
	"vigil/internal/notify/outbound"
)

// Schema is the payload's schema version.
const Schema = "vigil.alert.v1"

// Header names.
const (
	HeaderDelivery  = "Vigil-Delivery"
	HeaderTimestamp = "Vigil-Timestamp"
	HeaderSignature = "Vigil-Signature"
)

// DefaultWindow is how far a timestamp may be from the receiver's clock
// when Verify is given no window.
const DefaultWindow = 5 * time.Minute

// Verify's errors.
var (
	ErrNoSignature  = errors.New("webhook: no v1 signature")
	ErrBadTimestamp = errors.New("webhook: malformed timestamp")
	ErrBadSignature = errors.New("webhook: signature mismatch")
	ErrStale        = errors.New("webhook: timestamp outside the window")
)

// SecretFunc returns the signing secret of a target (its webhook
// subscription's key). An error is returned by Notify wrapped; wrap it with
// notify.Permanent if retrying cannot help (no such subscription).
type SecretFunc func(ctx context.Context, to notify.Target) ([]byte, error)

// Config tunes the Notifier. Zero values take the defaults.
type Config struct {
	MaxAttempts    int           // tries in all; default 5
	MaxElapsed     time.Duration // no retry would start later than this after the first; default 2m
	BaseDelay      time.Duration // first backoff ceiling; default 1s
	MaxDelay       time.Duration // backoff ceiling; default 30s
	AttemptTimeout time.Duration // one try, connect to response headers and 4 KiB of body; default 10s

	// Clock tells the time for timestamps and waits between tries (on its
	// timers, see clock.TimersOf); default clock.Real.
	Clock clock.Clock
	// Jitter picks the wait in [0, max]; nil is uniform random.
	Jitter func(max time.Duration) time.Duration
	// NewDeliveryID returns a unique delivery id; default 128 random bits.
	NewDeliveryID func() string
	// Logger gets retries at Debug (ids, statuses and classes only); nil
	// discards.
	Logger    *slog.Logger
	UserAgent string // default "vigil-webhook/1"
}

// Notifier delivers to webhooks. Target.Address is the receiver's URL.
type Notifier struct {
	client  *http.Client
	secret  SecretFunc
	cfg     Config
	clk     clock.Timers
	backoff outbound.Backoff
	log     *slog.Logger
}

// New returns a Notifier that posts with client (from outbound.New) and
// signs with the secret that secret returns for each target.
func New(client *http.Client, secret SecretFunc, cfg Config) *Notifier {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.MaxElapsed <= 0 {
		cfg.MaxElapsed = 2 * time.Minute
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.NewDeliveryID == nil {
		cfg.NewDeliveryID = rand.Text
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "vigil-webhook/1"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{
		client:  client,
		secret:  secret,
		cfg:     cfg,
		clk:     clock.TimersOf(cfg.Clock),
		backoff: outbound.Backoff{Base: cfg.BaseDelay, Max: cfg.MaxDelay, Jitter: cfg.Jitter},
		log:     log,
	}
}

// Channel returns "webhook".
func (*Notifier) Channel() string { return "webhook" }

// Payload is the JSON body, schema vigil.alert.v1. Fields may be added to
// the schema; none is removed or changes meaning without a new version.
type Payload struct {
	Schema     string    `json:"schema"`
	DeliveryID string    `json:"delivery_id"`
	Event      string    `json:"event"`
	AlertID    string    `json:"alert_id"`
	OrgID      string    `json:"org_id"`
	Kind       string    `json:"kind"`
	Severity   string    `json:"severity,omitempty"`
	State      string    `json:"state,omitempty"`
	RaisedAt   time.Time `json:"raised_at,omitzero"`
	Step       int       `json:"step"`
	Attempt    int       `json:"attempt"`
	PersonName string    `json:"person_name,omitempty"`
	Note       string    `json:"note,omitempty"`
	Detail     string    `json:"detail,omitempty"`
	Position   *Position `json:"position,omitempty"`
	ConsoleURL string    `json:"console_url,omitempty"`
	MapURL     string    `json:"map_url,omitempty"`
	AckURL     string    `json:"ack_url,omitempty"`
	AckedBy    string    `json:"acked_by,omitempty"`
}

// Position is where the person was.
type Position struct {
	Lat       float64   `json:"lat"`
	Lon       float64   `json:"lon"`
	AccuracyM float64   `json:"accuracy_m,omitempty"`
	At        time.Time `json:"at,omitzero"`
}

// link returns s if it is an absolute http(s) URL, else "": the links
// come from the caller, built from the configured public base URL, and
// anything else is dropped rather than sent.
func link(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	return s
}

// NewPayload returns the payload for m. Links that are not absolute
// http(s) URLs are left out.
func NewPayload(deliveryID string, m notify.Message) Payload {
	p := Payload{
		Schema:     Schema,
		DeliveryID: deliveryID,
		Event:      string(m.Event),
		AlertID:    m.AlertID,
		OrgID:      m.OrgID,
		Kind:       m.Kind,
		Severity:   m.Severity,
		State:      m.State,
		RaisedAt:   m.RaisedAt.UTC(),
		Step:       m.Step,
		Attempt:    m.Attempt,
		PersonName: m.PersonName,
		Note:       m.Note,
		Detail:     m.Detail,
		ConsoleURL: link(m.ConsoleURL),
		MapURL:     link(m.MapURL),
		AckURL:     link(m.AckURL),
		AckedBy:    m.AckedBy,
	}
	if pos := m.Position; pos != nil {
		p.Position = &Position{Lat: pos.Lat, Lon: pos.Lon, AccuracyM: pos.AccuracyM}
		if !pos.At.IsZero() {
			p.Position.At = pos.At.UTC()
		}
	}
	return p
}

// DeadLetter is a delivery that was given up: the error Notify returns
// after the last try (wrapped with notify.Permanent when the failure was
// permanent). Get it with errors.As. It holds no secret and no personal
// data; URL has no user info, query or fragment, but keeps the path (some
// receivers put a token there: record URL, do not log it). Error and every
// fmt verb print only the host.
type DeadLetter struct {
	DeliveryID string
	URL        string
	Attempts   int
	LastStatus int    // the last HTTP status, 0 if none was received
	LastClass  string // "status", or outbound.Classify of the last error
	// Reason is why delivery stopped: "permanent", "max_attempts" or
	// "max_elapsed".
	Reason      string
	First, Last time.Time // when the first and the last try started

	err error // the last try's error
}

func (d *DeadLetter) Error() string {
	host := "[invalid url]"
	if u, err := url.Parse(d.URL); err == nil {
		host = u.Host
	}
	last := d.LastClass
	if d.LastStatus != 0 {
		last = "status " + strconv.Itoa(d.LastStatus)
	}
	return fmt.Sprintf("webhook: delivery %s to %s given up after %d attempts (%s): last %s",
		d.DeliveryID, host, d.Attempts, d.Reason, last)
}

// Unwrap returns the last try's error.
func (d *DeadLetter) Unwrap() error { return d.err }

// Format prints Error's text for every verb (%v, %+v, %#v …), so printing
// a DeadLetter never shows URL's path, where some receivers keep a token.
func (d DeadLetter) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, d.Error()) }

// StatusError is a try answered with a status other than 2xx.
type StatusError struct{ Code int }

func (e *StatusError) Error() string {
	return "webhook: receiver answered status " + strconv.Itoa(e.Code)
}

// Notify delivers m to the webhook at to.Address. The Receipt's
// ProviderID is the delivery id. A failure is a *DeadLetter (wrapped with
// notify.Permanent if retrying cannot help), except when ctx ends first:
// then the error wraps ctx's cause, and the delivery was not given up.
func (n *Notifier) Notify(ctx context.Context, to notify.Target, m notify.Message) (notify.Receipt, error) {
	u, err := url.Parse(to.Address)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return notify.Receipt{}, notify.Permanent(errors.New("webhook: notify: target is not an http(s) URL"))
	}
	secret, err := n.secret(ctx, to)
	if err != nil {
		return notify.Receipt{}, fmt.Errorf("webhook: notify: signing secret: %w", err)
	}
	if len(secret) == 0 {
		return notify.Receipt{}, notify.Permanent(errors.New("webhook: notify: target has no signing secret"))
	}
	id := n.cfg.NewDeliveryID()
	body, err := json.Marshal(NewPayload(id, m))
	if err != nil {
		return notify.Receipt{}, fmt.Errorf("webhook: notify: encode payload: %w", err)
	}

	dl := &DeadLetter{DeliveryID: id, URL: outbound.RedactURL(to.Address), First: n.clk.Now()}
	for attempt := 1; ; attempt++ {
		dl.Attempts, dl.Last = attempt, n.clk.Now()
		status, retryAfter, err := n.post(ctx, to.Address, secret, id, body)
		if err == nil {
			return notify.Receipt{ProviderID: id, Attempts: attempt}, nil
		}
		if ctx.Err() != nil {
			return notify.Receipt{}, fmt.Errorf("webhook: delivery %s after %d attempts: %w", id, attempt, context.Cause(ctx))
		}
		dl.err, dl.LastStatus, dl.LastClass = err, status, "status"
		if status == 0 {
			dl.LastClass = outbound.Classify(err)
		}
		if !retryable(status, dl.LastClass) {
			dl.Reason = "permanent"
			return notify.Receipt{}, notify.Permanent(dl)
		}
		if attempt >= n.cfg.MaxAttempts {
			dl.Reason = "max_attempts"
			return notify.Receipt{}, dl
		}
		// A Retry-After longer than the backoff ceiling is cut to it:
		// an alarm does not wait on a receiver's say-so.
		delay := min(max(n.backoff.Delay(attempt-1), retryAfter), n.maxDelay())
		if n.clk.Now().Add(delay).Sub(dl.First) > n.cfg.MaxElapsed {
			dl.Reason = "max_elapsed"
			return notify.Receipt{}, dl
		}
		n.log.DebugContext(ctx, "webhook retry", "delivery_id", id, "alert_id", m.AlertID,
			"attempt", attempt, "status", status, "class", dl.LastClass, "delay", delay)
		if err := n.sleep(ctx, delay); err != nil {
			return notify.Receipt{}, fmt.Errorf("webhook: delivery %s after %d attempts: %w", id, attempt, err)
		}
	}
}

func (n *Notifier) maxDelay() time.Duration {
	if n.cfg.MaxDelay > 0 {
		return n.cfg.MaxDelay
	}
	return 30 * time.Second
}

// retryable: statuses per outbound.RetryableStatus; without a status, a
// timeout or a network/DNS failure, not a refusal, a redirect or TLS.
func retryable(status int, class string) bool {
	if status != 0 {
		return outbound.RetryableStatus(status)
	}
	switch class {
	case "timeout", "network", "dns", "too_large", "error":
		return true
	}
	return false
}

// post makes one try. It returns the status (0 if none) and any wait the
// receiver asked for; err is nil only for a 2xx.
func (n *Notifier) post(ctx context.Context, target string, secret []byte, id string, body []byte) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, 0, errors.New("webhook: post: cannot build request")
	}
	ts := n.clk.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", n.cfg.UserAgent)
	req.Header.Set(HeaderDelivery, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("webhook: post: %w", outbound.RedactError(err))
	}
	defer resp.Body.Close()
	// Read a little so the connection can be reused; the body is never
	// put in an error (a receiver may echo what it got).
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, 0, nil
	}
	return resp.StatusCode, outbound.RetryAfter(resp.Header, n.clk.Now()), &StatusError{Code: resp.StatusCode}
}

// sleep waits d on the clock's timers, or until ctx ends.
func (n *Notifier) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := n.clk.NewTimer()
	defer t.Stop()
	t.ResetAt(n.clk.Now().Add(d))
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C():
		return nil
	}
}

// Sign returns the Vigil-Signature header value for body signed at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, strconv.FormatInt(ts.Unix(), 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify is the reference receiver check of a delivery: header holds the
// request's Vigil-Timestamp and Vigil-Signature, body its exact bytes. It
// returns nil if one v1 signature matches (in constant time) and the
// timestamp is within window of now (DefaultWindow if window <= 0), else an
// error matching ErrNoSignature, ErrBadTimestamp, ErrBadSignature or
// ErrStale. A receiver should also de-duplicate on the body's delivery_id.
func Verify(secret []byte, header http.Header, body []byte, now time.Time, window time.Duration) error {
	if window <= 0 {
		window = DefaultWindow
	}
	if len(secret) == 0 {
		return fmt.Errorf("webhook: verify: empty secret: %w", ErrBadSignature)
	}
	tsText := header.Get(HeaderTimestamp)
	ts, err := parseTimestamp(tsText)
	if err != nil {
		return fmt.Errorf("webhook: verify: %w", err)
	}
	sigs, err := parseSignatures(strings.Join(header.Values(HeaderSignature), ","))
	if err != nil {
		return fmt.Errorf("webhook: verify: %w", err)
	}
	want := mac(secret, tsText, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("webhook: verify: %w", ErrBadSignature)
	}
	if d := now.Sub(ts); d > window || d < -window {
		return fmt.Errorf("webhook: verify: signed %s from now: %w", d.Round(time.Second), ErrStale)
	}
	return nil
}

// parseTimestamp accepts unix seconds as 1 to 12 ASCII digits, nothing
// else (no sign, no space), so the signed text is unambiguous.
func parseTimestamp(s string) (time.Time, error) {
	if len(s) == 0 || len(s) > 12 {
		return time.Time{}, ErrBadTimestamp
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, ErrBadTimestamp
		}
	}
	secs, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, ErrBadTimestamp
	}
	return time.Unix(secs, 0), nil
}

// maxSignatures bounds the work one header can cause.
const maxSignatures = 8

// parseSignatures reads a Vigil-Signature value: comma-separated
// scheme=value entries, of which the v1 ones (64 hex digits) are returned.
// Other schemes and malformed v1 values are skipped (a sender may add a
// scheme or sign with two keys during a rotation); no v1 at all is
// ErrNoSignature.
func parseSignatures(v string) ([][]byte, error) {
	if len(v) > 1024 {
		return nil, ErrNoSignature
	}
	var out [][]byte
	for part := range strings.SplitSeq(v, ",") {
		scheme, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || scheme != "v1" || len(val) != 2*sha256.Size {
			continue
		}
		b, err := hex.DecodeString(val)
		if err != nil {
			continue
		}
		out = append(out, b)
		if len(out) == maxSignatures {
			break
		}
	}
	if len(out) == 0 {
		return nil, ErrNoSignature
	}
	return out, nil
}
