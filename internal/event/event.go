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
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
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
	TypeAlarm     Type = "alarm"
)

// Types lists every event type, in documentation order.
var Types = []Type{TypePosition, TypeHeartbeat, TypeBattery, TypeButton, TypeMotion, TypeFall, TypeAlarm}

// ButtonKind says which button or soft button was pressed.
type ButtonKind string

// The button kinds.
const (
	ButtonSOS     ButtonKind = "sos"
	ButtonCancel  ButtonKind = "cancel"
	ButtonCheckIn ButtonKind = "checkin"
	ButtonDuress  ButtonKind = "duress"
	// ButtonHelp answers a pre-alert (a detected fall, man-down or no
	// movement) with "I need help": it is raised at once instead of at
	// the end of its cancel window. With no pre-alert open it is an SOS.
	ButtonHelp ButtonKind = "help"
)

// Source names the gateway an event came through.
type Source string

// The sources.
const (
	SourceMQTT Source = "mqtt"
	SourceHTTP Source = "http"
	// SourceDetector marks an event the server derived itself: a fall its
	// detector found in a device's motion events.
	SourceDetector Source = "detector"
	// SourceGT06 marks an event a GT06/Concox tracker sent over its binary
	// TCP protocol (internal/gateway/gt06).
	SourceGT06 Source = "gt06"
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
//
// A device may send the samples compactly instead (docs/device-api.md):
// AccelI16 and GyroI16 are base64 of little-endian int16 x, y, z triples,
// one count being AccelScale g (default DefaultAccelScale) or GyroScale
// deg/s (default DefaultGyroScale). Decoding expands them into Accel and
// Gyro and clears them, so events inside Vigil always carry the arrays.
type Motion struct {
	RateHz float64     `json:"rate_hz"`
	Accel  [][]float64 `json:"accel"`
	Gyro   [][]float64 `json:"gyro,omitempty"`

	AccelI16   string  `json:"accel_i16,omitempty"`
	AccelScale float64 `json:"accel_scale,omitempty"`
	GyroI16    string  `json:"gyro_i16,omitempty"`
	GyroScale  float64 `json:"gyro_scale,omitempty"`
}

// The default scales of the compact motion encoding: 1 mg and 0.1 deg/s
// per count (int16 then spans ±32.767 g and ±3276.7 deg/s).
const (
	DefaultAccelScale = 0.001
	DefaultGyroScale  = 0.1
)

// Fall is a fall detected by the device itself.
type Fall struct {
	Confidence float64 `json:"confidence"`
}

// AlarmKind says which alarm a device raised by itself.
type AlarmKind string

// The device alarm kinds.
const (
	// AlarmManDown: the device found its wearer down (tilt, impact and no
	// movement by its own rules).
	AlarmManDown AlarmKind = "man_down"
	// AlarmNoMotion: the device saw no movement for its configured time.
	AlarmNoMotion AlarmKind = "no_motion"
)

// Alarm is an alarm the device decided by itself (man-down, no-motion).
type Alarm struct {
	Kind AlarmKind `json:"kind"`
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
	Alarm     *Alarm     `json:"alarm,omitempty"`
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
	Alarm     *Alarm     `json:"alarm,omitempty"`
}

// Key is the idempotency key of an event: one device never reuses a message id.
func (e *Event) Key() string { return e.DeviceID + "/" + e.MsgID }

// IsAlarm reports whether the event is one that must raise an alert at once.
func (e *Event) IsAlarm() bool {
	switch e.Type {
	case TypeFall, TypeAlarm:
		return true
	case TypeButton:
		return e.Button != nil && (e.Button.Kind == ButtonSOS || e.Button.Kind == ButtonDuress || e.Button.Kind == ButtonHelp)
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
	if !fastMessage(b, &m) {
		m = Message{}
		if err := strictUnmarshal(b, &m); err != nil {
			return Event{}, err
		}
	}
	return d.normalise(&m, from, now)
}

// Normalise validates a message a gateway built itself from another wire
// format (a tracker protocol) exactly as Decode validates JSON, and
// normalises it.
func (d *Decoder) Normalise(m Message, from Origin, now time.Time) (Event, error) {
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
		Alarm:      m.Alarm,
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
		return invalid("type", "unknown; want position, heartbeat, battery, button, motion, fall or alarm")
	}
	// A position may accompany any event (the location of an SOS); every
	// other body belongs to its own type only.
	for _, b := range [...]struct {
		t       Type
		present bool
	}{
		{TypeHeartbeat, m.Heartbeat != nil},
		{TypeBattery, m.Battery != nil},
		{TypeButton, m.Button != nil},
		{TypeMotion, m.Motion != nil},
		{TypeFall, m.Fall != nil},
		{TypeAlarm, m.Alarm != nil},
	} {
		if b.present && b.t != m.Type {
			return invalid(string(b.t), "not allowed on a "+string(m.Type)+" event")
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
	case TypeAlarm:
		if m.Alarm == nil {
			return invalid("alarm", "required")
		}
		switch m.Alarm.Kind {
		case AlarmManDown, AlarmNoMotion:
		case "":
			return invalid("alarm.kind", "required")
		default:
			return invalid("alarm.kind", "unknown; want man_down or no_motion")
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
		case ButtonSOS, ButtonCancel, ButtonCheckIn, ButtonDuress, ButtonHelp:
		case "":
			return invalid("button.kind", "required")
		default:
			return invalid("button.kind", "unknown; want sos, help, cancel, checkin or duress")
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

// expandCompact decodes a compact sample field into dst: base64 (standard,
// padded) of int16 little-endian triples times scale.
func expandCompact(field, b64 string, scale, def float64, l Limits, dst *[][]float64) error {
	if *dst != nil {
		return invalid(field, "not allowed together with the array form")
	}
	if scale == 0 {
		scale = def
	}
	if !(scale > 0 && scale <= 1) {
		return invalid(field[:len(field)-4]+"_scale", "must be above 0 and at most 1")
	}
	if base64.StdEncoding.DecodedLen(len(b64)) > 6*l.MaxSamples+2 {
		return invalid(field, fmt.Sprintf("more than %d samples", l.MaxSamples))
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return invalid(field, "not standard base64")
	}
	if len(raw)%6 != 0 {
		return invalid(field, "length must be a whole number of samples (6 bytes each: int16 x, y, z)")
	}
	out := make([][]float64, len(raw)/6)
	for i := range out {
		out[i] = []float64{
			float64(int16(binary.LittleEndian.Uint16(raw[6*i:]))) * scale,
			float64(int16(binary.LittleEndian.Uint16(raw[6*i+2:]))) * scale,
			float64(int16(binary.LittleEndian.Uint16(raw[6*i+4:]))) * scale,
		}
	}
	*dst = out
	return nil
}

func validMotion(m *Motion, l Limits) error {
	if m.AccelI16 != "" {
		if err := expandCompact("accel_i16", m.AccelI16, m.AccelScale, DefaultAccelScale, l, &m.Accel); err != nil {
			return err
		}
	} else if m.AccelScale != 0 {
		return invalid("accel_scale", "only allowed with accel_i16")
	}
	if m.GyroI16 != "" {
		if err := expandCompact("gyro_i16", m.GyroI16, m.GyroScale, DefaultGyroScale, l, &m.Gyro); err != nil {
			return err
		}
	} else if m.GyroScale != 0 {
		return invalid("gyro_scale", "only allowed with gyro_i16")
	}
	m.AccelI16, m.AccelScale, m.GyroI16, m.GyroScale = "", 0, "", 0
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
func Marshal(e *Event) ([]byte, error) { return AppendJSON(make([]byte, 0, 256), e) }

// AppendJSON appends what Marshal returns for e to dst. Its output is
// byte for byte encoding/json's (a test holds it to that); events that do
// not fit its fast path (a string needing escapes, a NaN) are left to
// encoding/json.
func AppendJSON(dst []byte, e *Event) ([]byte, error) {
	if out, ok := appendEvent(dst, e); ok {
		return out, nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return dst, fmt.Errorf("marshal event: %w", err)
	}
	return append(dst, b...), nil
}

// Unmarshal decodes an event from the bus. It refuses unknown fields and a
// schema version it does not speak, so a newer producer cannot be silently
// misread by an older consumer.
func Unmarshal(b []byte) (Event, error) {
	var e Event
	if !fastEvent(b, &e) {
		e = Event{}
		if err := strictUnmarshal(b, &e); err != nil {
			return Event{}, fmt.Errorf("unmarshal event: %w", err)
		}
	}
	if e.V != SchemaVersion {
		return Event{}, fmt.Errorf("unmarshal event: %w", invalid("v", fmt.Sprintf("version %d not supported", e.V)))
	}
	if e.DeviceID == "" || e.MsgID == "" {
		return Event{}, fmt.Errorf("unmarshal event: %w", invalid("device_id", "device_id and msg_id required"))
	}
	return e, nil
}

// --- fast paths -------------------------------------------------------------
//
// encoding/json spends most of its time on reflection, so the common shape
// of a message or event is parsed and printed by hand. The fast parser only
// accepts a strict subset of what encoding/json accepts: every key spelt
// exactly as in the struct tags and given once, strings of printable ASCII
// without escapes, no nulls, numbers and literals of the right JSON type.
// It reports false on anything else, valid or not, and the caller decodes
// the input again with encoding/json, which then gives the result or the
// error it always gave. So whatever the fast path accepts, it decodes to
// exactly what encoding/json would, and every refusal still comes from
// encoding/json (the differential fuzz test in fast_test.go holds both).

// parser reads JSON from b at i.
type parser struct {
	b []byte
	i int
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next skips whitespace and consumes c if it comes next.
func (p *parser) next(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (p *parser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// rawString returns a string of printable ASCII without escapes, with its
// quotes.
func (p *parser) rawString() ([]byte, bool) {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	for j := p.i + 1; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := p.b[p.i : j+1]
			p.i = j + 1
			return s, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func (p *parser) str() (string, bool) {
	s, ok := p.rawString()
	if !ok {
		return "", false
	}
	return string(s[1 : len(s)-1]), true
}

func (p *parser) time(t *time.Time) bool {
	s, ok := p.rawString()
	return ok && t.UnmarshalJSON(s) == nil
}

// number returns a number as JSON spells it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
// and whether it is an integer (no fraction or exponent).
func (p *parser) number() (num []byte, integer, ok bool) {
	p.ws()
	b, i := p.b, p.i
	digits := func() bool {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return nil, false, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return nil, false, false
		}
		integer = false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return nil, false, false
		}
		integer = false
	}
	num = b[p.i:i]
	p.i = i
	return num, integer, true
}

func (p *parser) float(f *float64) bool {
	num, _, ok := p.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(string(num), 64)
	*f = v
	return err == nil
}

func (p *parser) floatPtr(f **float64) bool {
	var v float64
	if !p.float(&v) {
		return false
	}
	*f = &v
	return true
}

func (p *parser) int(n *int) bool {
	num, integer, ok := p.number()
	if !ok || !integer {
		return false
	}
	v, err := strconv.ParseInt(string(num), 10, 64)
	*n = int(v)
	return err == nil && int64(int(v)) == v
}

func (p *parser) bool(v *bool) bool {
	p.ws()
	switch {
	case bytes.HasPrefix(p.b[p.i:], []byte("true")):
		*v, p.i = true, p.i+4
	case bytes.HasPrefix(p.b[p.i:], []byte("false")):
		*v, p.i = false, p.i+5
	default:
		return false
	}
	return true
}

// object reads an object whose keys are all in keys, each at most once,
// calling field with the key's index to read its value.
func (p *parser) object(keys []string, field func(k int) bool) bool {
	if !p.next('{') {
		return false
	}
	if p.next('}') {
		return true
	}
	var seen uint64
	for {
		raw, ok := p.rawString()
		if !ok || !p.next(':') {
			return false
		}
		k := slices.Index(keys, string(raw[1:len(raw)-1]))
		if k < 0 || seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		if !field(k) {
			return false
		}
		if p.next('}') {
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

// array reads an array, calling elem for each element.
func (p *parser) array(elem func() bool) bool {
	if !p.next('[') {
		return false
	}
	if p.next(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.next(']') {
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

func (p *parser) samples(s *[][]float64) bool {
	out := [][]float64{} // [] decodes to an empty, not a nil, slice
	ok := p.array(func() bool {
		xyz := make([]float64, 0, 3)
		ok := p.array(func() bool {
			var f float64
			if !p.float(&f) {
				return false
			}
			xyz = append(xyz, f)
			return true
		})
		out = append(out, xyz)
		return ok
	})
	*s = out
	return ok
}

var positionKeys = []string{"lat", "lon", "accuracy_m", "speed_mps", "heading_deg", "altitude_m", "fix_time"}

func (p *parser) position(dst **Position) bool {
	var v Position
	*dst = &v
	return p.object(positionKeys, func(k int) bool {
		switch k {
		case 0:
			return p.float(&v.Lat)
		case 1:
			return p.float(&v.Lon)
		case 2:
			return p.float(&v.AccuracyM)
		case 3:
			return p.floatPtr(&v.SpeedMPS)
		case 4:
			return p.floatPtr(&v.HeadingDeg)
		case 5:
			return p.floatPtr(&v.AltitudeM)
		default:
			return p.time(&v.FixTime)
		}
	})
}

// body reads one of the event bodies into the matching field of bs.
func (p *parser) body(name string, bs *bodies) bool {
	switch name {
	case "position":
		return p.position(&bs.Position)
	case "heartbeat":
		var v Heartbeat
		bs.Heartbeat = &v
		return p.object([]string{"signal_dbm"}, func(int) bool {
			var n int
			v.SignalDBm = &n
			return p.int(&n)
		})
	case "battery":
		var v Battery
		bs.Battery = &v
		return p.object([]string{"percent", "charging"}, func(k int) bool {
			if k == 0 {
				return p.int(&v.Percent)
			}
			return p.bool(&v.Charging)
		})
	case "button":
		var v Button
		bs.Button = &v
		return p.object([]string{"kind", "code"}, func(k int) bool {
			s, ok := p.str()
			if k == 0 {
				v.Kind = ButtonKind(s)
			} else {
				v.Code = s
			}
			return ok
		})
	case "motion":
		var v Motion
		bs.Motion = &v
		return p.object([]string{"rate_hz", "accel", "gyro", "accel_i16", "accel_scale", "gyro_i16", "gyro_scale"}, func(k int) bool {
			switch k {
			case 0:
				return p.float(&v.RateHz)
			case 1:
				return p.samples(&v.Accel)
			case 2:
				return p.samples(&v.Gyro)
			case 3:
				s, ok := p.str()
				v.AccelI16 = s
				return ok
			case 4:
				return p.float(&v.AccelScale)
			case 5:
				s, ok := p.str()
				v.GyroI16 = s
				return ok
			default:
				return p.float(&v.GyroScale)
			}
		})
	case "fall":
		var v Fall
		bs.Fall = &v
		return p.object([]string{"confidence"}, func(int) bool { return p.float(&v.Confidence) })
	case "alarm":
		var v Alarm
		bs.Alarm = &v
		return p.object([]string{"kind"}, func(int) bool {
			s, ok := p.str()
			v.Kind = AlarmKind(s)
			return ok
		})
	}
	return false
}

// bodies are the body fields Message and Event share.
type bodies struct {
	Position  *Position
	Heartbeat *Heartbeat
	Battery   *Battery
	Button    *Button
	Motion    *Motion
	Fall      *Fall
	Alarm     *Alarm
}

var messageKeys = []string{"v", "id", "ts", "type", "position", "heartbeat", "battery", "button", "motion", "fall", "alarm"}

// fastMessage decodes b into m if b is in the fast path's subset.
func fastMessage(b []byte, m *Message) bool {
	p := parser{b: b}
	var bs bodies
	ok := p.object(messageKeys, func(k int) bool {
		switch k {
		case 0:
			return p.int(&m.V)
		case 1:
			var ok bool
			m.ID, ok = p.str()
			return ok
		case 2:
			return p.time(&m.TS)
		case 3:
			return p.typ(&m.Type)
		default:
			return p.body(messageKeys[k], &bs)
		}
	}) && p.end()
	m.Position, m.Heartbeat, m.Battery, m.Button, m.Motion, m.Fall, m.Alarm = bs.Position, bs.Heartbeat, bs.Battery, bs.Button, bs.Motion, bs.Fall, bs.Alarm
	return ok
}

// typ reads an event type, sharing the constant's string when it is one.
func (p *parser) typ(t *Type) bool {
	raw, ok := p.rawString()
	if !ok {
		return false
	}
	s := raw[1 : len(raw)-1]
	for _, known := range Types {
		if string(s) == string(known) {
			*t = known
			return true
		}
	}
	*t = Type(s)
	return true
}

var eventKeys = []string{"v", "org_id", "device_id", "msg_id", "type", "device_time", "received_at", "source", "late",
	"position", "heartbeat", "battery", "button", "motion", "fall", "alarm"}

// fastEvent decodes b into e if b is in the fast path's subset.
func fastEvent(b []byte, e *Event) bool {
	p := parser{b: b}
	var bs bodies
	ok := p.object(eventKeys, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			return p.int(&e.V)
		case 1:
			e.OrgID, ok = p.str()
		case 2:
			e.DeviceID, ok = p.str()
		case 3:
			e.MsgID, ok = p.str()
		case 4:
			return p.typ(&e.Type)
		case 5:
			return p.time(&e.DeviceTime)
		case 6:
			return p.time(&e.ReceivedAt)
		case 7:
			var s string
			s, ok = p.str()
			switch Source(s) {
			case SourceMQTT:
				e.Source = SourceMQTT
			case SourceHTTP:
				e.Source = SourceHTTP
			default:
				e.Source = Source(s)
			}
		case 8:
			return p.bool(&e.Late)
		default:
			return p.body(eventKeys[k], &bs)
		}
		return ok
	}) && p.end()
	e.Position, e.Heartbeat, e.Battery, e.Button, e.Motion, e.Fall, e.Alarm = bs.Position, bs.Heartbeat, bs.Battery, bs.Button, bs.Motion, bs.Fall, bs.Alarm
	return ok
}

// printer appends JSON as encoding/json prints it; ok turns false on a
// value the fast path leaves to encoding/json.
type printer struct {
	b  []byte
	ok bool
}

func (w *printer) key(k string) {
	w.b = append(w.b, k...) // k is `,"name":` or `"name":`
}

// str appends a string that needs no escaping (encoding/json escapes
// control characters, quotes, backslashes, <, > and &, and rewrites
// invalid UTF-8).
func (w *printer) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			w.ok = false
			return
		}
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, s...)
	w.b = append(w.b, '"')
}

// float appends f as encoding/json does.
func (w *printer) float(f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		w.ok = false
		return
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	w.b = strconv.AppendFloat(w.b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(w.b)
		if n >= 4 && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
			w.b[n-2] = w.b[n-1]
			w.b = w.b[:n-1]
		}
	}
}

func (w *printer) time(t time.Time) {
	w.b = append(w.b, '"')
	b, err := t.AppendText(w.b)
	if err != nil {
		w.ok = false
		return
	}
	w.b = append(b, '"')
}

func (w *printer) samples(s [][]float64) {
	if s == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(w.b, '[')
	for i, xyz := range s {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		if xyz == nil {
			w.b = append(w.b, "null"...)
			continue
		}
		w.b = append(w.b, '[')
		for j, f := range xyz {
			if j > 0 {
				w.b = append(w.b, ',')
			}
			w.float(f)
		}
		w.b = append(w.b, ']')
	}
	w.b = append(w.b, ']')
}

// appendEvent appends e as encoding/json prints it, or reports false.
func appendEvent(dst []byte, e *Event) ([]byte, bool) {
	w := printer{b: dst, ok: true}
	w.b = append(w.b, `{"v":`...)
	w.b = strconv.AppendInt(w.b, int64(e.V), 10)
	w.key(`,"org_id":`)
	w.str(e.OrgID)
	w.key(`,"device_id":`)
	w.str(e.DeviceID)
	w.key(`,"msg_id":`)
	w.str(e.MsgID)
	w.key(`,"type":`)
	w.str(string(e.Type))
	w.key(`,"device_time":`)
	w.time(e.DeviceTime)
	w.key(`,"received_at":`)
	w.time(e.ReceivedAt)
	w.key(`,"source":`)
	w.str(string(e.Source))
	if e.Late {
		w.key(`,"late":true`)
	}
	if p := e.Position; p != nil {
		w.key(`,"position":{"lat":`)
		w.float(p.Lat)
		w.key(`,"lon":`)
		w.float(p.Lon)
		w.key(`,"accuracy_m":`)
		w.float(p.AccuracyM)
		if p.SpeedMPS != nil {
			w.key(`,"speed_mps":`)
			w.float(*p.SpeedMPS)
		}
		if p.HeadingDeg != nil {
			w.key(`,"heading_deg":`)
			w.float(*p.HeadingDeg)
		}
		if p.AltitudeM != nil {
			w.key(`,"altitude_m":`)
			w.float(*p.AltitudeM)
		}
		if !p.FixTime.IsZero() {
			w.key(`,"fix_time":`)
			w.time(p.FixTime)
		}
		w.b = append(w.b, '}')
	}
	if h := e.Heartbeat; h != nil {
		w.key(`,"heartbeat":{`)
		if h.SignalDBm != nil {
			w.key(`"signal_dbm":`)
			w.b = strconv.AppendInt(w.b, int64(*h.SignalDBm), 10)
		}
		w.b = append(w.b, '}')
	}
	if b := e.Battery; b != nil {
		w.key(`,"battery":{"percent":`)
		w.b = strconv.AppendInt(w.b, int64(b.Percent), 10)
		w.key(`,"charging":`)
		w.b = strconv.AppendBool(w.b, b.Charging)
		w.b = append(w.b, '}')
	}
	if b := e.Button; b != nil {
		w.key(`,"button":{"kind":`)
		w.str(string(b.Kind))
		if b.Code != "" {
			w.key(`,"code":`)
			w.str(b.Code)
		}
		w.b = append(w.b, '}')
	}
	if m := e.Motion; m != nil {
		w.key(`,"motion":{"rate_hz":`)
		w.float(m.RateHz)
		w.key(`,"accel":`)
		w.samples(m.Accel)
		if len(m.Gyro) > 0 {
			w.key(`,"gyro":`)
			w.samples(m.Gyro)
		}
		w.b = append(w.b, '}')
	}
	if f := e.Fall; f != nil {
		w.key(`,"fall":{"confidence":`)
		w.float(f.Confidence)
		w.b = append(w.b, '}')
	}
	if a := e.Alarm; a != nil {
		w.key(`,"alarm":{"kind":`)
		w.str(string(a.Kind))
		w.b = append(w.b, '}')
	}
	w.b = append(w.b, '}')
	if !w.ok {
		return dst, false
	}
	return w.b, true
}
