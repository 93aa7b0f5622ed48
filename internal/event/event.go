// Package event is the one versioned schema every gateway produces: what a
// device said (position, heartbeat, battery, button, motion window, fall),
// validated strictly and normalised with the device's identity and the time
// it reached us.
//
// It is a leaf package: it imports only the standard library. Gateways decode
// outside bytes with Decode/DecodeBatch; processors read Event values off the
// bus with Unmarshal. Nothing here logs; errors name the offending field and
// never echo the value (coordinates are personal data).
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"
)

// SchemaVersion is the version of the wire and bus schema this package speaks.
const SchemaVersion = 1

// Type says what an event reports.
type Type string

// The event types.
const (
	TypePosition  Type = "position"
	TypeHeartbeat Type = "heartbeat"
	TypeBattery   Type = "battery"
	TypeButton    Type = "button"
	TypeMotion    Type = "motion"
	TypeFall      Type = "fall"
)

// Types lists every event type, in documentation order.
var Types = []Type{TypePosition, TypeHeartbeat, TypeBattery, TypeButton, TypeMotion, TypeFall}

// ButtonKind says which button or soft button was pressed.
type ButtonKind string

// The button kinds.
const (
	ButtonSOS     ButtonKind = "sos"
	ButtonCancel  ButtonKind = "cancel"
	ButtonCheckIn ButtonKind = "checkin"
	ButtonDuress  ButtonKind = "duress"
)

// Source names the gateway an event came through.
type Source string

// The sources.
const (
	SourceMQTT Source = "mqtt"
	SourceHTTP Source = "http"
)

// Position is a location fix.
type Position struct {
	Lat        float64   `json:"lat"`
	Lon        float64   `json:"lon"`
	AccuracyM  float64   `json:"accuracy_m"`
	SpeedMPS   *float64  `json:"speed_mps,omitempty"`
	HeadingDeg *float64  `json:"heading_deg,omitempty"`
	AltitudeM  *float64  `json:"altitude_m,omitempty"`
	FixTime    time.Time `json:"fix_time,omitzero"`
}

// LogValue keeps coordinates out of logs.
func (p Position) LogValue() slog.Value { return slog.StringValue("[position redacted]") }

// Heartbeat is a keep-alive, optionally with radio signal strength.
type Heartbeat struct {
	SignalDBm *int `json:"signal_dbm,omitempty"`
}

// Battery is the battery state.
type Battery struct {
	Percent  int  `json:"percent"`
	Charging bool `json:"charging"`
}

// Button is a press of a hardware or soft button. Code carries a PIN given
// with a cancel (a duress code is detected by the safety engine); it is a
// secret and never logged.
type Button struct {
	Kind ButtonKind `json:"kind"`
	Code string     `json:"code,omitempty"`
}

// LogValue keeps the code out of logs.
func (b Button) LogValue() slog.Value { return slog.StringValue(string(b.Kind)) }

// Motion is a window of inertial samples: accelerometer in g, gyroscope in
// deg/s, each sample [x, y, z], at RateHz.
type Motion struct {
	RateHz float64     `json:"rate_hz"`
	Accel  [][]float64 `json:"accel"`
	Gyro   [][]float64 `json:"gyro,omitempty"`
}

// Fall is a fall detected by the device itself.
type Fall struct {
	Confidence float64 `json:"confidence"`
}

// Message is one event as a device sends it.
type Message struct {
	V         int        `json:"v"`
	ID        string     `json:"id"`
	TS        time.Time  `json:"ts"`
	Type      Type       `json:"type"`
	Position  *Position  `json:"position,omitempty"`
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
	Battery   *Battery   `json:"battery,omitempty"`
	Button    *Button    `json:"button,omitempty"`
	Motion    *Motion    `json:"motion,omitempty"`
	Fall      *Fall      `json:"fall,omitempty"`
}

// Event is a validated message normalised with who sent it and when it
// arrived. It is what travels on the bus and what the store projects.
type Event struct {
	V          int       `json:"v"`
	OrgID      string    `json:"org_id"`
	DeviceID   string    `json:"device_id"`
	MsgID      string    `json:"msg_id"`
	Type       Type      `json:"type"`
	DeviceTime time.Time `json:"device_time"`
	ReceivedAt time.Time `json:"received_at"`
	Source     Source    `json:"source"`
	// Late is set when the device's timestamp is older than the late
	// threshold on arrival: store-and-forward after lost signal.
	Late      bool       `json:"late,omitempty"`
	Position  *Position  `json:"position,omitempty"`
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
	Battery   *Battery   `json:"battery,omitempty"`
	Button    *Button    `json:"button,omitempty"`
	Motion    *Motion    `json:"motion,omitempty"`
	Fall      *Fall      `json:"fall,omitempty"`
}

// Key is the idempotency key of an event: one device never reuses a message id.
func (e *Event) Key() string { return e.DeviceID + "/" + e.MsgID }

// IsAlarm reports whether the event is one that must raise an alert at once.
func (e *Event) IsAlarm() bool {
	switch e.Type {
	case TypeFall:
		return true
	case TypeButton:
		return e.Button != nil && (e.Button.Kind == ButtonSOS || e.Button.Kind == ButtonDuress)
	}
	return false
}

// Limits bounds what is accepted. The zero value uses the defaults.
type Limits struct {
	MaxPayload    int           // bytes of one message; default 256 KiB
	MaxBatch      int           // events in one HTTP batch; default 500
	MaxBatchBytes int           // bytes of one HTTP batch; default 4 MiB
	MaxFuture     time.Duration // how far ahead a device clock may be; default 5 min
	LateAfter     time.Duration // older than this on arrival is late; default 2 min
	MaxSamples    int           // samples in one motion window; default 4096
}

func (l Limits) withDefaults() Limits {
	if l.MaxPayload <= 0 {
		l.MaxPayload = 256 << 10
	}
	if l.MaxBatch <= 0 {
		l.MaxBatch = 500
	}
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = 4 << 20
	}
	if l.MaxFuture <= 0 {
		l.MaxFuture = 5 * time.Minute
	}
	if l.LateAfter <= 0 {
		l.LateAfter = 2 * time.Minute
	}
	if l.MaxSamples <= 0 {
		l.MaxSamples = 4096
	}
	return l
}

// Defaults returns the limits with every default filled in.
func (l Limits) Defaults() Limits { return l.withDefaults() }

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("event: invalid")

// ErrTooLarge is wrapped when a payload or batch exceeds its size limit.
var ErrTooLarge = errors.New("event: too large")

// FieldError says which field is wrong and why. Its text never contains the
// offending value.
type FieldError struct {
	Field  string
	Reason string
	err    error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return "event: " + e.Reason
	}
	return "event: " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalid or ErrTooLarge.
func (e *FieldError) Unwrap() error { return e.err }

func invalid(field, reason string) error {
	return &FieldError{Field: field, Reason: reason, err: ErrInvalid}
}

func prefixed(prefix string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		f := prefix
		if fe.Field != "" {
			f = prefix + "." + fe.Field
		}
		return &FieldError{Field: f, Reason: fe.Reason, err: fe.err}
	}
	return err
}

// Decoder validates and normalises device payloads against Limits at a given
// time. It is safe for concurrent use.
type Decoder struct {
	limits Limits
}

// NewDecoder returns a Decoder with the given limits (zero fields take defaults).
func NewDecoder(l Limits) *Decoder { return &Decoder{limits: l.withDefaults()} }

// Limits returns the effective limits.
func (d *Decoder) Limits() Limits { return d.limits }

// Origin says who sent a payload, as authenticated by the gateway.
type Origin struct {
	OrgID    string
	DeviceID string
	Source   Source
}

// Decode parses one message from a device, validates it and normalises it.
func (d *Decoder) Decode(b []byte, from Origin, now time.Time) (Event, error) {
	if len(b) > d.limits.MaxPayload {
		return Event{}, &FieldError{Reason: fmt.Sprintf("payload larger than %d bytes", d.limits.MaxPayload), err: ErrTooLarge}
	}
	var m Message
	if err := strictUnmarshal(b, &m); err != nil {
		return Event{}, err
	}
	return d.normalise(&m, from, now)
}

// Batch is the HTTP device API body: events sent together, typically after
// a period without signal.
type Batch struct {
	Events []json.RawMessage `json:"events"`
}

// DecodeBatch parses a batch. It is all or nothing: one invalid event refuses
// the batch, naming it as events[i], so the client can fix and resend without
// anything being half accepted.
func (d *Decoder) DecodeBatch(b []byte, from Origin, now time.Time) ([]Event, error) {
	if len(b) > d.limits.MaxBatchBytes {
		return nil, &FieldError{Reason: fmt.Sprintf("body larger than %d bytes", d.limits.MaxBatchBytes), err: ErrTooLarge}
	}
	var batch Batch
	if err := strictUnmarshal(b, &batch); err != nil {
		return nil, err
	}
	if batch.Events == nil {
		return nil, invalid("events", "required")
	}
	if len(batch.Events) == 0 {
		return nil, invalid("events", "must hold at least one event")
	}
	if len(batch.Events) > d.limits.MaxBatch {
		return nil, &FieldError{Field: "events", Reason: fmt.Sprintf("more than %d events", d.limits.MaxBatch), err: ErrTooLarge}
	}
	out := make([]Event, 0, len(batch.Events))
	seen := make(map[string]int, len(batch.Events))
	for i, raw := range batch.Events {
		ev, err := d.Decode(raw, from, now)
		if err != nil {
			return nil, prefixed(fmt.Sprintf("events[%d]", i), err)
		}
		if j, dup := seen[ev.MsgID]; dup {
			return nil, invalid(fmt.Sprintf("events[%d].id", i), fmt.Sprintf("repeats events[%d].id", j))
		}
		seen[ev.MsgID] = i
		out = append(out, ev)
	}
	return out, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("", "trailing data after the JSON object")
	}
	return nil
}

// jsonError turns a decoding error into a FieldError without the value.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var timeErr *time.ParseError
	switch {
	case errors.As(err, &typeErr):
		f := typeErr.Field
		return invalid(f, "wrong type, want "+typeErr.Type.String())
	case errors.As(err, &syntaxErr):
		return invalid("", fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset))
	case errors.As(err, &timeErr):
		return invalid("", "timestamp not in RFC 3339 format")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "empty or truncated JSON")
	}
	// encoding/json reports unknown fields as `json: unknown field "x"`.
	const unknown = "json: unknown field "
	if s := err.Error(); len(s) > len(unknown) && s[:len(unknown)] == unknown {
		name := s[len(unknown):]
		if len(name) > 66 {
			name = name[:66] + `…"`
		}
		return invalid("", "unknown field "+name)
	}
	return invalid("", "malformed JSON")
}

// earliest is the oldest device timestamp accepted: a clock that was never
// set reports 1970 or 2000 and its readings cannot be placed in time.
var earliest = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

func (d *Decoder) normalise(m *Message, from Origin, now time.Time) (Event, error) {
	if m.V != SchemaVersion {
		return Event{}, invalid("v", fmt.Sprintf("must be %d", SchemaVersion))
	}
	if err := validID(m.ID); err != nil {
		return Event{}, prefixed("id", err)
	}
	if m.TS.IsZero() {
		return Event{}, invalid("ts", "required")
	}
	if m.TS.Before(earliest) {
		return Event{}, invalid("ts", "before 2020-01-01: device clock not set")
	}
	if m.TS.After(now.Add(d.limits.MaxFuture)) {
		return Event{}, invalid("ts", fmt.Sprintf("more than %s in the future", d.limits.MaxFuture))
	}
	if err := d.validateBody(m); err != nil {
		return Event{}, err
	}
	ev := Event{
		V:          SchemaVersion,
		OrgID:      from.OrgID,
		DeviceID:   from.DeviceID,
		MsgID:      m.ID,
		Type:       m.Type,
		DeviceTime: m.TS.UTC(),
		ReceivedAt: now.UTC(),
		Source:     from.Source,
		Late:       now.Sub(m.TS) > d.limits.LateAfter,
		Position:   m.Position,
		Heartbeat:  m.Heartbeat,
		Battery:    m.Battery,
		Button:     m.Button,
		Motion:     m.Motion,
		Fall:       m.Fall,
	}
	if ev.Position != nil && !ev.Position.FixTime.IsZero() {
		ev.Position.FixTime = ev.Position.FixTime.UTC()
	}
	return ev, nil
}

func validID(id string) error {
	if id == "" {
		return invalid("", "required")
	}
	if len(id) > 64 {
		return invalid("", "longer than 64 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return invalid("", "may hold only letters, digits and - _ . :")
		}
	}
	return nil
}

func (d *Decoder) validateBody(m *Message) error {
	bodies := map[Type]bool{
		TypeHeartbeat: m.Heartbeat != nil,
		TypeBattery:   m.Battery != nil,
		TypeButton:    m.Button != nil,
		TypeMotion:    m.Motion != nil,
		TypeFall:      m.Fall != nil,
	}
	known := false
	for _, t := range Types {
		if m.Type == t {
			known = true
		}
	}
	if m.Type == "" {
		return invalid("type", "required")
	}
	if !known {
		return invalid("type", "unknown; want position, heartbeat, battery, button, motion or fall")
	}
	// A position may accompany any event (the location of an SOS); every
	// other body belongs to its own type only.
	for t, present := range bodies {
		if present && t != m.Type {
			return invalid(string(t), "not allowed on a "+string(m.Type)+" event")
		}
	}
	switch m.Type {
	case TypePosition:
		if m.Position == nil {
			return invalid("position", "required")
		}
	case TypeBattery:
		if m.Battery == nil {
			return invalid("battery", "required")
		}
	case TypeButton:
		if m.Button == nil {
			return invalid("button", "required")
		}
	case TypeMotion:
		if m.Motion == nil {
			return invalid("motion", "required")
		}
		if m.Position != nil {
			return invalid("position", "not allowed on a motion event")
		}
	case TypeFall:
		if m.Fall == nil {
			return invalid("fall", "required")
		}
	}
	if p := m.Position; p != nil {
		if err := validPosition(p, m.TS, d.limits); err != nil {
			return prefixed("position", err)
		}
	}
	if h := m.Heartbeat; h != nil && h.SignalDBm != nil {
		if s := *h.SignalDBm; s < -150 || s > 0 {
			return invalid("heartbeat.signal_dbm", "must be between -150 and 0")
		}
	}
	if b := m.Battery; b != nil {
		if b.Percent < 0 || b.Percent > 100 {
			return invalid("battery.percent", "must be between 0 and 100")
		}
	}
	if b := m.Button; b != nil {
		switch b.Kind {
		case ButtonSOS, ButtonCancel, ButtonCheckIn, ButtonDuress:
		case "":
			return invalid("button.kind", "required")
		default:
			return invalid("button.kind", "unknown; want sos, cancel, checkin or duress")
		}
		if len(b.Code) > 16 {
			return invalid("button.code", "longer than 16 characters")
		}
		if b.Code != "" && b.Kind != ButtonCancel {
			return invalid("button.code", "only allowed with kind cancel")
		}
	}
	if mo := m.Motion; mo != nil {
		if err := validMotion(mo, d.limits); err != nil {
			return prefixed("motion", err)
		}
	}
	if f := m.Fall; f != nil {
		if !(f.Confidence >= 0 && f.Confidence <= 1) {
			return invalid("fall.confidence", "must be between 0 and 1")
		}
	}
	return nil
}

func validPosition(p *Position, ts time.Time, l Limits) error {
	if !(p.Lat >= -90 && p.Lat <= 90) {
		return invalid("lat", "must be between -90 and 90")
	}
	if !(p.Lon >= -180 && p.Lon <= 180) {
		return invalid("lon", "must be between -180 and 180")
	}
	if p.Lat == 0 && p.Lon == 0 {
		return invalid("", "0,0 is not a fix (null island)")
	}
	if !(p.AccuracyM > 0 && p.AccuracyM <= 100_000) {
		return invalid("accuracy_m", "required, greater than 0 and at most 100000")
	}
	if p.SpeedMPS != nil && !(*p.SpeedMPS >= 0 && *p.SpeedMPS <= 350) {
		return invalid("speed_mps", "must be between 0 and 350")
	}
	if p.HeadingDeg != nil && !(*p.HeadingDeg >= 0 && *p.HeadingDeg < 360) {
		return invalid("heading_deg", "must be at least 0 and below 360")
	}
	if p.AltitudeM != nil && !(*p.AltitudeM >= -1000 && *p.AltitudeM <= 20_000) {
		return invalid("altitude_m", "must be between -1000 and 20000")
	}
	if !p.FixTime.IsZero() {
		if p.FixTime.Before(earliest) {
			return invalid("fix_time", "before 2020-01-01")
		}
		if p.FixTime.After(ts.Add(l.MaxFuture)) {
			return invalid("fix_time", "after the event's ts")
		}
	}
	return nil
}

func validMotion(m *Motion, l Limits) error {
	if !(m.RateHz >= 1 && m.RateHz <= 1000) {
		return invalid("rate_hz", "must be between 1 and 1000")
	}
	if len(m.Accel) == 0 {
		return invalid("accel", "required, at least one sample")
	}
	if len(m.Accel) > l.MaxSamples {
		return invalid("accel", fmt.Sprintf("more than %d samples", l.MaxSamples))
	}
	if err := validSamples("accel", m.Accel, 64); err != nil {
		return err
	}
	if m.Gyro != nil {
		if len(m.Gyro) != len(m.Accel) {
			return invalid("gyro", "must have as many samples as accel")
		}
		if err := validSamples("gyro", m.Gyro, 5000); err != nil {
			return err
		}
	}
	return nil
}

func validSamples(field string, s [][]float64, limit float64) error {
	for i, v := range s {
		if len(v) != 3 {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "must be [x, y, z]")
		}
		for _, x := range v {
			if math.IsNaN(x) || math.Abs(x) > limit {
				return invalid(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("values must be within ±%g", limit))
			}
		}
	}
	return nil
}

// Marshal encodes an event for the bus.
func Marshal(e *Event) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("marshal event: %w", err)
	}
	return b, nil
}

// Unmarshal decodes an event from the bus. It refuses unknown fields and a
// schema version it does not speak, so a newer producer cannot be silently
// misread by an older consumer.
func Unmarshal(b []byte) (Event, error) {
	var e Event
	if err := strictUnmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("unmarshal event: %w", err)
	}
	if e.V != SchemaVersion {
		return Event{}, fmt.Errorf("unmarshal event: %w", invalid("v", fmt.Sprintf("version %d not supported", e.V)))
	}
	if e.DeviceID == "" || e.MsgID == "" {
		return Event{}, fmt.Errorf("unmarshal event: %w", invalid("device_id", "device_id and msg_id required"))
	}
	return e, nil
}
