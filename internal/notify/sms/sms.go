// Package sms is the SMS channel for a Twilio-compatible HTTP API: a
// notify.Notifier that sends a short plain text about an alert
// (POST {base}/2010-04-01/Accounts/{sid}/Messages.json, form-encoded To,
// From, Body, StatusCallback, HTTP Basic auth sid:token), and two
// http.Handlers for the app to mount: delivery receipts (status
// callbacks) and inbound replies ("ACK", "ACK 1234").
//
// Both handlers accept a request only with a valid X-Twilio-Signature: the
// base64 HMAC-SHA1, keyed with the auth token, of the full callback URL
// followed by the sorted POST parameters. The URL is the one configured
// (Config.StatusCallbackURL, Config.InboundURL), never one built from the
// request's Host header or path, so a proxy or an attacker cannot change
// what is verified.
//
// Sending is retried with exponential backoff and full jitter on 408, 429,
// 5xx, timeouts and network errors (a retry after a timeout may send the
// text twice: for an alarm, twice is better than never). Any other 4xx
// fails at once with notify.Permanent and the provider's numeric error
// code, never its message (which can echo the number or the request). The
// waits go through the Clock's timers, so tests run in virtual time.
//
// The auth token is a config.Secret and never reaches a log, an error or a
// response. Phone numbers, names and message text never reach a log or an
// error either: logs carry at most the last two digits of a number.
//
// All HTTP goes through an internal/notify/outbound client (SSRF-safe). It
// must not import store, bus, safety or app. A Notifier and its handlers
// are safe for concurrent use and start no goroutines.
package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/notify"
	"vigil/internal/notify/outbound"
)

// DefaultBaseURL is Twilio's API.
const DefaultBaseURL = "https://api.twilio.com"

// MaxText is the longest text Notify sends, in characters (two
// concatenated SMS segments of GSM-7; fewer if a name needs Unicode).
const MaxText = 320

// SignatureHeader carries the provider's signature of a callback.
const SignatureHeader = "X-Twilio-Signature"

// Config configures the channel. BaseURL, AccountSID, AuthToken and From
// are required (BaseURL defaults to DefaultBaseURL); the rest tunes.
type Config struct {
	// BaseURL is the provider's API. It must be https, except to a
	// loopback address (a test provider, a local relay).
	BaseURL    string
	AccountSID string
	AuthToken  config.Secret
	From       string // the sending number, E.164
	// StatusCallbackURL is the public URL of StatusHandler, sent with each
	// message as StatusCallback and used to verify the callbacks' signature.
	// Empty: no delivery receipts.
	StatusCallbackURL string
	// InboundURL is the public URL of InboundHandler as configured at the
	// provider for incoming messages; the signature is verified against it.
	InboundURL string

	// ReplyCode returns the code a recipient replies with to acknowledge
	// ("Reply ACK <code>"). nil, or "" for a message, puts Message.AckURL
	// in the text instead (if any).
	ReplyCode func(to notify.Target, m notify.Message) string
	// Location is the time zone of times in the text; default UTC.
	Location *time.Location

	MaxAttempts    int           // tries in all; default 3
	BaseDelay      time.Duration // first backoff ceiling; default 1s
	MaxDelay       time.Duration // backoff ceiling; default 10s
	AttemptTimeout time.Duration // one try; default 10s
	// Clock tells the time and runs the waits between tries (on its
	// timers, see clock.TimersOf); default clock.Real.
	Clock clock.Clock
	// Jitter picks a wait in [0, max]; nil is uniform random.
	Jitter func(max time.Duration) time.Duration
	// Logger gets retries and rejected callbacks (never numbers, text or
	// the token); nil discards.
	Logger *slog.Logger
}

// Notifier sends texts. Target.Address is the recipient's E.164 number.
type Notifier struct {
	cfg      Config
	client   *http.Client
	endpoint string
	clk      clock.Timers
	backoff  outbound.Backoff
	log      *slog.Logger
}

// New returns a Notifier that calls the provider with client (from
// outbound.New). It fails for an incomplete or unsafe Config.
func New(client *http.Client, cfg Config) (*Notifier, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Host == "" || base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, errors.New("sms: config: base URL must be an absolute URL without credentials, query or fragment")
	}
	if base.Scheme != "https" && (base.Scheme != "http" || !isLoopback(base.Hostname())) {
		return nil, errors.New("sms: config: base URL must be https (http only to a loopback address)")
	}
	if cfg.AccountSID == "" || strings.ContainsAny(cfg.AccountSID, "/?#%: ") {
		return nil, errors.New("sms: config: account SID is required and must be a plain id")
	}
	if cfg.AuthToken.Reveal() == "" {
		return nil, errors.New("sms: config: auth token is required")
	}
	if !IsE164(cfg.From) {
		return nil, errors.New("sms: config: from number must be E.164 (+ and 7 to 15 digits)")
	}
	for name, u := range map[string]string{"status callback URL": cfg.StatusCallbackURL, "inbound URL": cfg.InboundURL} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.User != nil {
			return nil, fmt.Errorf("sms: config: %s must be an absolute http(s) URL without credentials", name)
		}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 10 * time.Second
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Second
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{
		cfg:      cfg,
		client:   client,
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json",
		clk:      clock.TimersOf(cfg.Clock),
		backoff:  outbound.Backoff{Base: cfg.BaseDelay, Max: cfg.MaxDelay, Jitter: cfg.Jitter},
		log:      log,
	}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// IsE164 reports whether s is a number in E.164: "+", a non-zero digit,
// then 6 to 14 more digits.
func IsE164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Channel returns "sms".
func (*Notifier) Channel() string { return "sms" }

// Error is a send that failed: after the last try, or at once for a
// permanent failure (then wrapped with notify.Permanent). It names no
// number, text or token.
type Error struct {
	Attempts int
	Status   int    // the provider's HTTP status on the last try, 0 if none
	Code     int    // the provider's error code, 0 if none
	Class    string // "status", or outbound.Classify of the last error
	err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("sms: send: ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "provider status %d", e.Status)
		if e.Code != 0 {
			fmt.Fprintf(&b, " code %d", e.Code)
		}
	} else {
		b.WriteString(e.Class)
	}
	fmt.Fprintf(&b, " after %d attempt(s)", e.Attempts)
	if e.err != nil && e.Status == 0 {
		b.WriteString(": ")
		b.WriteString(e.err.Error())
	}
	return b.String()
}

// Unwrap returns the last try's error, if it was not an HTTP status.
func (e *Error) Unwrap() error { return e.err }

// Notify sends the text for m to to.Address. The Receipt's ProviderID is
// the provider's message sid, matching Status.ProviderID later.
func (n *Notifier) Notify(ctx context.Context, to notify.Target, m notify.Message) (notify.Receipt, error) {
	if !IsE164(to.Address) {
		return notify.Receipt{}, notify.Permanent(errors.New("sms: notify: target is not an E.164 number"))
	}
	code := ""
	if n.cfg.ReplyCode != nil {
		code = n.cfg.ReplyCode(to, m)
	}
	form := url.Values{
		"To":   {to.Address},
		"From": {n.cfg.From},
		"Body": {Text(m, code, n.cfg.Location)},
	}
	if n.cfg.StatusCallbackURL != "" {
		form.Set("StatusCallback", n.cfg.StatusCallbackURL)
	}
	body := form.Encode()

	for attempt := 1; ; attempt++ {
		sid, st, err := n.post(ctx, body)
		if err == nil {
			return notify.Receipt{ProviderID: sid, Attempts: attempt}, nil
		}
		if ctx.Err() != nil {
			return notify.Receipt{}, fmt.Errorf("sms: send after %d attempt(s): %w", attempt, context.Cause(ctx))
		}
		e := &Error{Attempts: attempt, Status: st.status, Code: st.code, Class: "status"}
		if st.status == 0 {
			e.Class, e.err = outbound.Classify(err), err
		}
		if !retryable(st.status, e.Class) {
			return notify.Receipt{}, notify.Permanent(e)
		}
		if attempt >= n.cfg.MaxAttempts {
			return notify.Receipt{}, e
		}
		delay := min(max(n.backoff.Delay(attempt-1), st.retryAfter), n.cfg.MaxDelay)
		n.log.DebugContext(ctx, "sms retry", "alert_id", m.AlertID, "to_suffix", Suffix(to.Address),
			"attempt", attempt, "status", st.status, "code", st.code, "class", e.Class, "delay", delay)
		if err := n.sleep(ctx, delay); err != nil {
			return notify.Receipt{}, fmt.Errorf("sms: send after %d attempt(s): %w", attempt, err)
		}
	}
}

func retryable(status int, class string) bool {
	if status != 0 {
		return outbound.RetryableStatus(status)
	}
	switch class {
	case "timeout", "network", "dns", "error":
		return true
	}
	return false
}

// answer is what one try learnt from the provider.
type answer struct {
	status     int
	code       int
	retryAfter time.Duration
}

// post makes one try; err is nil only for a 2xx.
func (n *Notifier) post(ctx context.Context, form string) (string, answer, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.endpoint, strings.NewReader(form))
	if err != nil {
		return "", answer{}, errors.New("sms: post: cannot build request")
	}
	req.SetBasicAuth(n.cfg.AccountSID, n.cfg.AuthToken.Reveal())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return "", answer{}, fmt.Errorf("sms: post: %w", outbound.RedactError(err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	sid, code := parseResponse(raw)
	a := answer{status: resp.StatusCode, code: code}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Accepted: a body without a sid still means the text is on its
		// way, and a retry would send it twice.
		return sid, a, nil
	}
	a.retryAfter = outbound.RetryAfter(resp.Header, n.clk.Now())
	return "", a, fmt.Errorf("sms: post: provider status %d", resp.StatusCode)
}

// parseResponse reads the provider's JSON answer: the message sid of a
// success, the numeric error code of a failure. Anything else in it (the
// message, which can echo the request) is ignored. A sid is returned only
// if it is a plain id.
func parseResponse(raw []byte) (sid string, code int) {
	var r struct {
		SID  string          `json:"sid"`
		Code json.RawMessage `json:"code"`
	}
	if json.Unmarshal(raw, &r) != nil {
		return "", 0
	}
	if validSID(r.SID) {
		sid = r.SID
	}
	c := strings.Trim(string(r.Code), `"`)
	if v, err := strconv.Atoi(c); err == nil && v > 0 && v < 1e9 {
		code = v
	}
	return sid, code
}

// validSID: 1 to 64 ASCII letters and digits.
func validSID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

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

// Suffix returns the last two digits of a number, all a log may carry.
func Suffix(number string) string {
	if len(number) < 2 {
		return ""
	}
	return number[len(number)-2:]
}

// Text returns the SMS for m: short and plain, at most MaxText
// characters. replyCode, if not "", asks for "Reply ACK <code>"; else
// m.AckURL, if any, is the way to acknowledge. Times are shown in loc.
// Links that are not absolute http(s) URLs are left out.
func Text(m notify.Message, replyCode string, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	kind := strings.ToUpper(strings.ReplaceAll(clean(m.Kind, 24), "_", " "))
	if kind == "" {
		kind = "ALERT"
	}
	name := clean(m.PersonName, 40)
	if name == "" {
		name = "someone"
	}
	when := ""
	if !m.RaisedAt.IsZero() {
		when = " at " + m.RaisedAt.In(loc).Format("15:04 MST")
	}
	where := ""
	switch {
	case isLink(m.MapURL):
		where = " Map: " + clean(m.MapURL, 200)
	case m.Position != nil:
		where = fmt.Sprintf(" At %.5f,%.5f", m.Position.Lat, m.Position.Lon)
	}
	ack := ""
	if code := clean(replyCode, 16); code != "" {
		ack = " Reply ACK " + code
	} else if isLink(m.AckURL) {
		ack = " Ack: " + clean(m.AckURL, 200)
	}

	var head string
	actionable := true
	switch m.Event {
	case notify.EventReminder:
		head = "VIGIL REMINDER " + kind + ": " + name + when + ", not yet acknowledged."
	case notify.EventExhausted:
		head = "VIGIL UNANSWERED " + kind + ": " + name + when + ", no one has acknowledged."
	case notify.EventCancelled:
		head, actionable = "VIGIL cancelled: "+kind+" for "+name+when+" was cancelled by the wearer. No action needed.", false
	case notify.EventAcked:
		by := clean(m.AckedBy, 40)
		if by == "" {
			by = "a responder"
		}
		head, actionable = "VIGIL acknowledged: "+kind+" for "+name+when+", by "+by+".", false
	case notify.EventResolved:
		head, actionable = "VIGIL resolved: "+kind+" for "+name+when+".", false
	default: // raised
		sev := ""
		if s := clean(m.Severity, 16); s != "" {
			sev = " (" + s + ")"
		}
		head = "VIGIL " + kind + sev + ": " + name + when + "."
	}
	if !actionable {
		where, ack = "", ""
	}
	// Drop what is least needed until it fits: the map link, then a link
	// to acknowledge (the reply code is short and always fits).
	for _, try := range [][2]string{{where, ack}, {"", ack}, {"", ""}} {
		if s := head + try[0] + try[1]; utf8.RuneCountInString(s) <= MaxText {
			return s
		}
	}
	return truncate(head, MaxText)
}

// isLink reports whether s is an absolute http(s) URL: the links come from
// the caller, built from the configured public base URL; anything else is
// dropped rather than sent.
func isLink(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// clean makes outside text safe for one line of an SMS: control and format
// characters removed, runs of space folded, at most n characters.
func clean(s string, n int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case r == utf8.RuneError, unicode.IsControl(r), unicode.Is(unicode.Cf, r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return truncate(b.String(), n)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// Signature returns the X-Twilio-Signature of a POST to fullURL with form
// parameters params, keyed with authToken: base64(HMAC-SHA1(fullURL +
// each key followed by its value, keys in byte order, a repeated key's
// values in byte order)).
func Signature(authToken, fullURL string, params url.Values) string {
	return base64.StdEncoding.EncodeToString(signatureMAC([]byte(authToken), fullURL, params))
}

func signatureMAC(key []byte, fullURL string, params url.Values) []byte {
	h := hmac.New(sha1.New, key)
	io.WriteString(h, fullURL)
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := slices.Clone(params[k])
		slices.Sort(vs)
		for _, v := range vs {
			io.WriteString(h, k)
			io.WriteString(h, v)
		}
	}
	return h.Sum(nil)
}

// parseSignatureHeader decodes an X-Twilio-Signature value: standard
// base64 of exactly 20 bytes, surrounding space ignored.
func parseSignatureHeader(v string) ([]byte, bool) {
	v = strings.TrimSpace(v)
	if len(v) != base64.StdEncoding.EncodedLen(sha1.Size) {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) != sha1.Size {
		return nil, false
	}
	return b, true
}

// validSignature checks header against the configured URL in constant
// time.
func validSignature(token []byte, fullURL string, params url.Values, header string) bool {
	got, ok := parseSignatureHeader(header)
	if !ok {
		return false
	}
	return hmac.Equal(got, signatureMAC(token, fullURL, params))
}

// Status is a delivery receipt.
type Status struct {
	ProviderID string // the message sid, as in notify.Receipt.ProviderID
	Status     string // queued, sending, sent, delivered, undelivered, failed, …
	ErrorCode  int    // the provider's error code, 0 if none
}

// Failed reports whether the message will not arrive.
func (s Status) Failed() bool { return s.Status == "failed" || s.Status == "undelivered" }

// Delivered reports whether the handset has the message.
func (s Status) Delivered() bool { return s.Status == "delivered" || s.Status == "read" }

// StatusFunc takes a delivery receipt. An error makes the handler answer
// 500 (the provider may try again).
type StatusFunc func(ctx context.Context, s Status) error

// ReplyFunc takes a reply asking to acknowledge: from is the sender's
// E.164 number, code the reply code ("" for a bare "ACK"). It reports
// whether that acknowledged something.
type ReplyFunc func(ctx context.Context, from, code string) (acked bool, err error)

// maxCallbackBody bounds a callback's form.
const maxCallbackBody = 64 << 10

// EmptyTwiML is the answer to an inbound message: no reply text.
const EmptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// StatusHandler returns the handler for delivery receipts, to mount at the
// path of Config.StatusCallbackURL. It fails if that URL is not configured.
func (n *Notifier) StatusHandler(fn StatusFunc) (http.Handler, error) {
	if n.cfg.StatusCallbackURL == "" {
		return nil, errors.New("sms: status handler: no status callback URL configured")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, ok := n.verified(w, r, n.cfg.StatusCallbackURL, "status")
		if !ok {
			return
		}
		s := Status{ProviderID: form.Get("MessageSid"), Status: strings.ToLower(form.Get("MessageStatus"))}
		if !validSID(s.ProviderID) || !validStatus(s.Status) {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if c := form.Get("ErrorCode"); c != "" {
			v, err := strconv.Atoi(c)
			if err != nil || v < 0 || v >= 1e9 {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			s.ErrorCode = v
		}
		if err := fn(r.Context(), s); err != nil {
			n.log.ErrorContext(r.Context(), "sms status callback", "provider_id", s.ProviderID, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}), nil
}

// validStatus: a lower-case word of up to 32 letters and underscores.
func validStatus(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := range len(s) {
		if (s[i] < 'a' || s[i] > 'z') && s[i] != '_' {
			return false
		}
	}
	return true
}

// InboundHandler returns the handler for incoming messages, to mount at
// the path of Config.InboundURL. A message that is not an acknowledgement
// is ignored; every verified message gets empty TwiML. It fails if that URL
// is not configured.
func (n *Notifier) InboundHandler(fn ReplyFunc) (http.Handler, error) {
	if n.cfg.InboundURL == "" {
		return nil, errors.New("sms: inbound handler: no inbound URL configured")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, ok := n.verified(w, r, n.cfg.InboundURL, "inbound")
		if !ok {
			return
		}
		from := form.Get("From")
		if code, ok := ParseReply(form.Get("Body")); ok && IsE164(from) {
			acked, err := fn(r.Context(), from, code)
			if err != nil {
				n.log.ErrorContext(r.Context(), "sms inbound reply", "from_suffix", Suffix(from), "err", err)
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
			n.log.DebugContext(r.Context(), "sms inbound reply", "from_suffix", Suffix(from), "acked", acked)
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		io.WriteString(w, EmptyTwiML)
	}), nil
}

// verified reads a callback's form and checks its signature against the
// configured URL and its AccountSid against ours. On failure it has
// answered and returns false.
func (n *Notifier) verified(w http.ResponseWriter, r *http.Request, fullURL, which string) (url.Values, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxCallbackBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return nil, false
		}
		http.Error(w, "bad request", http.StatusBadRequest)
		return nil, false
	}
	if !validSignature([]byte(n.cfg.AuthToken.Reveal()), fullURL, r.PostForm, r.Header.Get(SignatureHeader)) ||
		r.PostForm.Get("AccountSid") != n.cfg.AccountSID {
		n.log.WarnContext(r.Context(), "sms callback rejected: bad signature", "callback", which, "remote", remoteIP(r))
		http.Error(w, "forbidden", http.StatusForbidden)
		return nil, false
	}
	return r.PostForm, true
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// maxReply bounds the text ParseReply looks at.
const maxReply = 64

// ParseReply reads an inbound text as an acknowledgement: "ACK" alone or
// followed by a code of 1 to 16 letters and digits (an optional leading
// '#'), case- and whitespace-insensitive. It returns the code upper-cased
// ("" for a bare ACK) and whether the text was an acknowledgement.
func ParseReply(body string) (code string, ok bool) {
	if len(body) > maxReply || !utf8.ValidString(body) {
		return "", false
	}
	f := strings.Fields(body)
	if len(f) == 0 || len(f) > 2 || len(f[0]) != 3 || !strings.EqualFold(f[0], "ack") {
		return "", false
	}
	if len(f) == 1 {
		return "", true
	}
	c := strings.TrimPrefix(f[1], "#")
	if len(c) == 0 || len(c) > 16 {
		return "", false
	}
	for i := range len(c) {
		ch := c[i]
		if !('0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z') {
			return "", false
		}
	}
	return strings.ToUpper(c), true
}
