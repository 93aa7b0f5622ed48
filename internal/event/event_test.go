package event_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/event"
)

// now is the fixed arrival time of every test: time is an input.
var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

var origin = event.Origin{OrgID: "acme", DeviceID: "da", Source: event.SourceMQTT}

// obj is a JSON object under construction.
type obj = map[string]any

// valid returns a valid message of type t as a JSON object, with every
// optional field filled in so that each one can be broken by a test.
func valid(t event.Type) obj {
	m := obj{"v": 1, "id": "m-1", "ts": "2026-11-29T11:59:30Z", "type": string(t)}
	pos := obj{
		"lat": 53.8008, "lon": -1.5491, "accuracy_m": 12.5,
		"speed_mps": 1.4, "heading_deg": 90.0, "altitude_m": 61.0,
		"fix_time": "2026-11-29T11:59:29Z",
	}
	switch t {
	case event.TypePosition:
		m["position"] = pos
	case event.TypeHeartbeat:
		m["heartbeat"] = obj{"signal_dbm": -85}
	case event.TypeBattery:
		m["battery"] = obj{"percent": 80, "charging": false}
	case event.TypeButton:
		m["button"] = obj{"kind": "sos"}
		m["position"] = pos
	case event.TypeMotion:
		m["motion"] = obj{
			"rate_hz": 50.0,
			"accel":   []any{[]any{0.0, 0.0, 1.0}, []any{0.01, -0.02, 0.98}, []any{0.0, 0.01, 1.01}},
			"gyro":    []any{[]any{0.5, 0.0, -0.5}, []any{1.0, 2.0, 3.0}, []any{0.0, 0.0, 0.0}},
		}
	case event.TypeFall:
		m["fall"] = obj{"confidence": 0.93}
		m["position"] = pos
	case event.TypeAlarm:
		m["alarm"] = obj{"kind": "man_down"}
		m["position"] = pos
	}
	return m
}

// set stores v at a dotted path ("position.lat"), creating objects on the way.
func set(m obj, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(obj)
		if !ok {
			next = obj{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// del removes the value at a dotted path.
func del(m obj, path string) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		m = m[p].(obj)
	}
	delete(m, parts[len(parts)-1])
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkErr asserts err is a *FieldError naming field and wrapping want.
func checkErr(t *testing.T, err error, field string, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v on field %q", want, field)
	}
	var fe *event.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("got %T (%v), want *event.FieldError", err, err)
	}
	if fe.Field != field {
		t.Errorf("got field %q (%v), want %q", fe.Field, err, field)
	}
	if !errors.Is(err, want) {
		t.Errorf("got %v, want it to wrap %v", err, want)
	}
	if fe.Reason == "" {
		t.Errorf("got empty reason in %v", err)
	}
}

type ruleCase struct {
	name   string
	typ    event.Type
	mutate func(m obj)
	field  string // "" with ok=false means a whole-payload error
	ok     bool
}

func ruleCases() []ruleCase {
	return []ruleCase{
		// Every type, as given.
		{name: "position valid", typ: event.TypePosition, ok: true},
		{name: "heartbeat valid", typ: event.TypeHeartbeat, ok: true},
		{name: "battery valid", typ: event.TypeBattery, ok: true},
		{name: "button valid", typ: event.TypeButton, ok: true},
		{name: "motion valid", typ: event.TypeMotion, ok: true},
		{name: "fall valid", typ: event.TypeFall, ok: true},

		// Envelope.
		{name: "v missing", typ: event.TypeHeartbeat, mutate: func(m obj) { del(m, "v") }, field: "v"},
		{name: "v 2", typ: event.TypeHeartbeat, mutate: func(m obj) { m["v"] = 2 }, field: "v"},
		{name: "v 0", typ: event.TypeHeartbeat, mutate: func(m obj) { m["v"] = 0 }, field: "v"},
		{name: "v string", typ: event.TypeHeartbeat, mutate: func(m obj) { m["v"] = "1" }, field: "v"},
		{name: "id missing", typ: event.TypeHeartbeat, mutate: func(m obj) { del(m, "id") }, field: "id"},
		{name: "id empty", typ: event.TypeHeartbeat, mutate: func(m obj) { m["id"] = "" }, field: "id"},
		{name: "id 64 chars", typ: event.TypeHeartbeat, mutate: func(m obj) { m["id"] = strings.Repeat("a", 64) }, ok: true},
		{name: "id 65 chars", typ: event.TypeHeartbeat, mutate: func(m obj) { m["id"] = strings.Repeat("a", 65) }, field: "id"},
		{name: "id every allowed char", typ: event.TypeHeartbeat, mutate: func(m obj) { m["id"] = "aZ09-_.:" }, ok: true},
		{name: "id slash", typ: event.TypeHeartbeat, mutate: func(m obj) { m["id"] = "a/b" }, field: "id"},
		{name: "id space", typ: event.TypeHeartbeat, mutate: func(m obj) { m["id"] = "a b" }, field: "id"},
		{name: "id non-ascii", typ: event.TypeHeartbeat, mutate: func(m obj) { m["id"] = "é" }, field: "id"},
		{name: "id number", typ: event.TypeHeartbeat, mutate: func(m obj) { m["id"] = 7 }, field: "id"},
		{name: "ts missing", typ: event.TypeHeartbeat, mutate: func(m obj) { del(m, "ts") }, field: "ts"},
		{name: "ts not RFC 3339", typ: event.TypeHeartbeat, mutate: func(m obj) { m["ts"] = "29/11/2026 12:00" }, field: ""},
		{name: "ts number", typ: event.TypeHeartbeat, mutate: func(m obj) { m["ts"] = 1764417600 }, field: ""},
		{name: "ts 1970", typ: event.TypeHeartbeat, mutate: func(m obj) { m["ts"] = "1970-01-01T00:00:10Z" }, field: "ts"},
		{name: "ts just before 2020", typ: event.TypeHeartbeat, mutate: func(m obj) { m["ts"] = "2019-12-31T23:59:59Z" }, field: "ts"},
		{name: "ts 2020", typ: event.TypeHeartbeat, mutate: func(m obj) { m["ts"] = "2020-01-01T00:00:00Z" }, ok: true},
		{name: "ts with offset", typ: event.TypeHeartbeat, mutate: func(m obj) { m["ts"] = "2026-11-29T13:59:00+02:00" }, ok: true},
		{name: "ts 5 min ahead", typ: event.TypeHeartbeat, mutate: func(m obj) { m["ts"] = "2026-11-29T12:05:00Z" }, ok: true},
		{name: "ts 5 min 1 s ahead", typ: event.TypeHeartbeat, mutate: func(m obj) { m["ts"] = "2026-11-29T12:05:01Z" }, field: "ts"},
		{name: "ts next year", typ: event.TypeHeartbeat, mutate: func(m obj) { m["ts"] = "2027-11-29T12:00:00Z" }, field: "ts"},
		{name: "type missing", typ: event.TypeHeartbeat, mutate: func(m obj) { del(m, "type") }, field: "type"},
		{name: "type unknown", typ: event.TypeHeartbeat, mutate: func(m obj) { m["type"] = "panic" }, field: "type"},
		{name: "type upper case", typ: event.TypeHeartbeat, mutate: func(m obj) { m["type"] = "HEARTBEAT" }, field: "type"},
		{name: "unknown top-level field", typ: event.TypeHeartbeat, mutate: func(m obj) { m["extra"] = 1 }, field: ""},
		{name: "unknown nested field", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.satellites", 7) }, field: ""},
		{name: "org_id not accepted from device", typ: event.TypeHeartbeat, mutate: func(m obj) { m["org_id"] = "other" }, field: ""},
		{name: "late flag not accepted from device", typ: event.TypeHeartbeat, mutate: func(m obj) { m["late"] = false }, field: ""},

		// Type and body.
		{name: "position without body", typ: event.TypePosition, mutate: func(m obj) { del(m, "position") }, field: "position"},
		{name: "position body null", typ: event.TypePosition, mutate: func(m obj) { m["position"] = nil }, field: "position"},
		{name: "heartbeat without body", typ: event.TypeHeartbeat, mutate: func(m obj) { del(m, "heartbeat") }, ok: true},
		{name: "heartbeat empty body", typ: event.TypeHeartbeat, mutate: func(m obj) { m["heartbeat"] = obj{} }, ok: true},
		{name: "heartbeat with position", typ: event.TypeHeartbeat, mutate: func(m obj) { m["position"] = valid(event.TypePosition)["position"] }, ok: true},
		{name: "battery without body", typ: event.TypeBattery, mutate: func(m obj) { del(m, "battery") }, field: "battery"},
		{name: "button without body", typ: event.TypeButton, mutate: func(m obj) { del(m, "button") }, field: "button"},
		{name: "button without position", typ: event.TypeButton, mutate: func(m obj) { del(m, "position") }, ok: true},
		{name: "motion without body", typ: event.TypeMotion, mutate: func(m obj) { del(m, "motion") }, field: "motion"},
		{name: "motion with position", typ: event.TypeMotion, mutate: func(m obj) { m["position"] = valid(event.TypePosition)["position"] }, field: "position"},
		{name: "fall without body", typ: event.TypeFall, mutate: func(m obj) { del(m, "fall") }, field: "fall"},
		{name: "fall without position", typ: event.TypeFall, mutate: func(m obj) { del(m, "position") }, ok: true},
		{name: "heartbeat with battery body", typ: event.TypeHeartbeat, mutate: func(m obj) { m["battery"] = obj{"percent": 5} }, field: "battery"},
		{name: "position with heartbeat body", typ: event.TypePosition, mutate: func(m obj) { m["heartbeat"] = obj{} }, field: "heartbeat"},
		{name: "battery with button body", typ: event.TypeBattery, mutate: func(m obj) { m["button"] = obj{"kind": "sos"} }, field: "button"},
		{name: "button with fall body", typ: event.TypeButton, mutate: func(m obj) { m["fall"] = obj{"confidence": 1} }, field: "fall"},
		{name: "fall with motion body", typ: event.TypeFall, mutate: func(m obj) { m["motion"] = valid(event.TypeMotion)["motion"] }, field: "motion"},
		{name: "motion with battery body", typ: event.TypeMotion, mutate: func(m obj) { m["battery"] = obj{"percent": 5} }, field: "battery"},

		// Position.
		{name: "lat 90", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.lat", 90.0) }, ok: true},
		{name: "lat -90", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.lat", -90.0) }, ok: true},
		{name: "lat above 90", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.lat", 90.000001) }, field: "position.lat"},
		{name: "lat below -90", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.lat", -91.0) }, field: "position.lat"},
		{name: "lat string", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.lat", "53.8") }, field: "position.lat"},
		{name: "lat missing", typ: event.TypePosition, mutate: func(m obj) { del(m, "position.lat") }, ok: true}, // 0 is a latitude
		{name: "lon 180", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.lon", 180.0) }, ok: true},
		{name: "lon -180", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.lon", -180.0) }, ok: true},
		{name: "lon above 180", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.lon", 180.5) }, field: "position.lon"},
		{name: "lon below -180", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.lon", -181.0) }, field: "position.lon"},
		{name: "null island", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.lat", 0.0); set(m, "position.lon", 0.0) }, field: "position"},
		{name: "equator only", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.lat", 0.0) }, ok: true},
		{name: "accuracy missing", typ: event.TypePosition, mutate: func(m obj) { del(m, "position.accuracy_m") }, field: "position.accuracy_m"},
		{name: "accuracy 0", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.accuracy_m", 0.0) }, field: "position.accuracy_m"},
		{name: "accuracy negative", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.accuracy_m", -5.0) }, field: "position.accuracy_m"},
		{name: "accuracy 100 km", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.accuracy_m", 100000.0) }, ok: true},
		{name: "accuracy above 100 km", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.accuracy_m", 100000.5) }, field: "position.accuracy_m"},
		{name: "speed 0", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.speed_mps", 0.0) }, ok: true},
		{name: "speed 350", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.speed_mps", 350.0) }, ok: true},
		{name: "speed negative", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.speed_mps", -0.1) }, field: "position.speed_mps"},
		{name: "speed above 350", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.speed_mps", 351.0) }, field: "position.speed_mps"},
		{name: "heading 0", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.heading_deg", 0.0) }, ok: true},
		{name: "heading 359.9", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.heading_deg", 359.9) }, ok: true},
		{name: "heading 360", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.heading_deg", 360.0) }, field: "position.heading_deg"},
		{name: "heading negative", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.heading_deg", -1.0) }, field: "position.heading_deg"},
		{name: "altitude -1000", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.altitude_m", -1000.0) }, ok: true},
		{name: "altitude 20000", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.altitude_m", 20000.0) }, ok: true},
		{name: "altitude below -1000", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.altitude_m", -1000.1) }, field: "position.altitude_m"},
		{name: "altitude above 20000", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.altitude_m", 20001.0) }, field: "position.altitude_m"},
		{name: "optional position fields absent", typ: event.TypePosition, mutate: func(m obj) {
			for _, f := range []string{"speed_mps", "heading_deg", "altitude_m", "fix_time"} {
				del(m, "position."+f)
			}
		}, ok: true},
		{name: "fix_time before 2020", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.fix_time", "2019-06-01T00:00:00Z") }, field: "position.fix_time"},
		{name: "fix_time 5 min after ts", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.fix_time", "2026-11-29T12:04:30Z") }, ok: true},
		{name: "fix_time beyond 5 min after ts", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.fix_time", "2026-11-29T12:04:31Z") }, field: "position.fix_time"},
		{name: "fix_time long before ts", typ: event.TypePosition, mutate: func(m obj) { set(m, "position.fix_time", "2026-11-28T12:00:00Z") }, ok: true},
		{name: "invalid position on button", typ: event.TypeButton, mutate: func(m obj) { set(m, "position.lat", 100.0) }, field: "position.lat"},
		{name: "invalid position on fall", typ: event.TypeFall, mutate: func(m obj) { set(m, "position.accuracy_m", 0.0) }, field: "position.accuracy_m"},

		// Heartbeat.
		{name: "signal 0", typ: event.TypeHeartbeat, mutate: func(m obj) { set(m, "heartbeat.signal_dbm", 0) }, ok: true},
		{name: "signal -150", typ: event.TypeHeartbeat, mutate: func(m obj) { set(m, "heartbeat.signal_dbm", -150) }, ok: true},
		{name: "signal positive", typ: event.TypeHeartbeat, mutate: func(m obj) { set(m, "heartbeat.signal_dbm", 1) }, field: "heartbeat.signal_dbm"},
		{name: "signal below -150", typ: event.TypeHeartbeat, mutate: func(m obj) { set(m, "heartbeat.signal_dbm", -151) }, field: "heartbeat.signal_dbm"},
		{name: "signal fractional", typ: event.TypeHeartbeat, mutate: func(m obj) { set(m, "heartbeat.signal_dbm", -85.5) }, field: "heartbeat.signal_dbm"},

		// Battery.
		{name: "percent 0", typ: event.TypeBattery, mutate: func(m obj) { set(m, "battery.percent", 0) }, ok: true},
		{name: "percent 100", typ: event.TypeBattery, mutate: func(m obj) { set(m, "battery.percent", 100) }, ok: true},
		{name: "percent negative", typ: event.TypeBattery, mutate: func(m obj) { set(m, "battery.percent", -1) }, field: "battery.percent"},
		{name: "percent above 100", typ: event.TypeBattery, mutate: func(m obj) { set(m, "battery.percent", 101) }, field: "battery.percent"},
		{name: "charging not bool", typ: event.TypeBattery, mutate: func(m obj) { set(m, "battery.charging", "yes") }, field: "battery.charging"},

		// Button.
		{name: "kind cancel", typ: event.TypeButton, mutate: func(m obj) { set(m, "button.kind", "cancel") }, ok: true},
		{name: "kind checkin", typ: event.TypeButton, mutate: func(m obj) { set(m, "button.kind", "checkin") }, ok: true},
		{name: "kind duress", typ: event.TypeButton, mutate: func(m obj) { set(m, "button.kind", "duress") }, ok: true},
		{name: "kind missing", typ: event.TypeButton, mutate: func(m obj) { del(m, "button.kind") }, field: "button.kind"},
		{name: "kind unknown", typ: event.TypeButton, mutate: func(m obj) { set(m, "button.kind", "panic") }, field: "button.kind"},
		{name: "cancel with 16-char code", typ: event.TypeButton, mutate: func(m obj) {
			set(m, "button.kind", "cancel")
			set(m, "button.code", strings.Repeat("9", 16))
		}, ok: true},
		{name: "cancel with 17-char code", typ: event.TypeButton, mutate: func(m obj) {
			set(m, "button.kind", "cancel")
			set(m, "button.code", strings.Repeat("9", 17))
		}, field: "button.code"},
		{name: "code with sos", typ: event.TypeButton, mutate: func(m obj) { set(m, "button.code", "1234") }, field: "button.code"},

		// Motion.
		{name: "rate 1", typ: event.TypeMotion, mutate: func(m obj) { set(m, "motion.rate_hz", 1.0) }, ok: true},
		{name: "rate 1000", typ: event.TypeMotion, mutate: func(m obj) { set(m, "motion.rate_hz", 1000.0) }, ok: true},
		{name: "rate below 1", typ: event.TypeMotion, mutate: func(m obj) { set(m, "motion.rate_hz", 0.5) }, field: "motion.rate_hz"},
		{name: "rate above 1000", typ: event.TypeMotion, mutate: func(m obj) { set(m, "motion.rate_hz", 1001.0) }, field: "motion.rate_hz"},
		{name: "rate missing", typ: event.TypeMotion, mutate: func(m obj) { del(m, "motion.rate_hz") }, field: "motion.rate_hz"},
		{name: "accel missing", typ: event.TypeMotion, mutate: func(m obj) { del(m, "motion.accel"); del(m, "motion.gyro") }, field: "motion.accel"},
		{name: "accel empty", typ: event.TypeMotion, mutate: func(m obj) { set(m, "motion.accel", []any{}); del(m, "motion.gyro") }, field: "motion.accel"},
		{name: "accel sample of two", typ: event.TypeMotion, mutate: func(m obj) {
			set(m, "motion.accel", []any{[]any{0, 0, 1}, []any{0, 0, 1}, []any{0, 1}})
		}, field: "motion.accel[2]"},
		{name: "accel sample of four", typ: event.TypeMotion, mutate: func(m obj) {
			set(m, "motion.accel", []any{[]any{0, 0, 1, 0}, []any{0, 0, 1}, []any{0, 0, 1}})
		}, field: "motion.accel[0]"},
		{name: "accel 64 g", typ: event.TypeMotion, mutate: func(m obj) {
			set(m, "motion.accel", []any{[]any{64, -64, 1}, []any{0, 0, 1}, []any{0, 0, 1}})
		}, ok: true},
		{name: "accel above 64 g", typ: event.TypeMotion, mutate: func(m obj) {
			set(m, "motion.accel", []any{[]any{0, 0, 1}, []any{0, -64.5, 1}, []any{0, 0, 1}})
		}, field: "motion.accel[1]"},
		{name: "accel value string", typ: event.TypeMotion, mutate: func(m obj) {
			set(m, "motion.accel", []any{[]any{0, 0, "1"}})
		}, field: "motion.accel"},
		{name: "gyro absent", typ: event.TypeMotion, mutate: func(m obj) { del(m, "motion.gyro") }, ok: true},
		{name: "gyro shorter than accel", typ: event.TypeMotion, mutate: func(m obj) {
			set(m, "motion.gyro", []any{[]any{0, 0, 0}})
		}, field: "motion.gyro"},
		{name: "gyro empty", typ: event.TypeMotion, mutate: func(m obj) { set(m, "motion.gyro", []any{}) }, field: "motion.gyro"},
		{name: "gyro 5000", typ: event.TypeMotion, mutate: func(m obj) {
			set(m, "motion.gyro", []any{[]any{5000, -5000, 0}, []any{0, 0, 0}, []any{0, 0, 0}})
		}, ok: true},
		{name: "gyro above 5000", typ: event.TypeMotion, mutate: func(m obj) {
			set(m, "motion.gyro", []any{[]any{0, 0, 0}, []any{0, 0, 0}, []any{0, 5000.1, 0}})
		}, field: "motion.gyro[2]"},
		{name: "gyro sample of two", typ: event.TypeMotion, mutate: func(m obj) {
			set(m, "motion.gyro", []any{[]any{0, 0, 0}, []any{0, 0}, []any{0, 0, 0}})
		}, field: "motion.gyro[1]"},

		// Fall.
		{name: "alarm man_down", typ: event.TypeAlarm, ok: true},
		{name: "alarm no_motion", typ: event.TypeAlarm, mutate: func(m obj) { set(m, "alarm.kind", "no_motion") }, ok: true},
		{name: "alarm unknown kind", typ: event.TypeAlarm, mutate: func(m obj) { set(m, "alarm.kind", "panic") }, field: "alarm.kind"},
		{name: "alarm without kind", typ: event.TypeAlarm, mutate: func(m obj) { m["alarm"] = obj{} }, field: "alarm.kind"},
		{name: "alarm without body", typ: event.TypeAlarm, mutate: func(m obj) { del(m, "alarm") }, field: "alarm"},
		{name: "button with alarm body", typ: event.TypeButton, mutate: func(m obj) { m["alarm"] = obj{"kind": "man_down"} }, field: "alarm"},
		{name: "confidence 0", typ: event.TypeFall, mutate: func(m obj) { set(m, "fall.confidence", 0.0) }, ok: true},
		{name: "confidence 1", typ: event.TypeFall, mutate: func(m obj) { set(m, "fall.confidence", 1.0) }, ok: true},
		{name: "confidence missing", typ: event.TypeFall, mutate: func(m obj) { m["fall"] = obj{} }, ok: true}, // 0 is a confidence
		{name: "confidence negative", typ: event.TypeFall, mutate: func(m obj) { set(m, "fall.confidence", -0.01) }, field: "fall.confidence"},
		{name: "confidence above 1", typ: event.TypeFall, mutate: func(m obj) { set(m, "fall.confidence", 1.01) }, field: "fall.confidence"},
	}
}

func TestDecodeRules(t *testing.T) {
	dec := event.NewDecoder(event.Limits{})
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			m := valid(tc.typ)
			if tc.mutate != nil {
				tc.mutate(m)
			}
			ev, err := dec.Decode(encode(t, m), origin, now)
			if tc.ok {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				if ev.Type != tc.typ {
					t.Errorf("got type %q, want %q", ev.Type, tc.typ)
				}
				return
			}
			checkErr(t, err, tc.field, event.ErrInvalid)
		})
	}
}

// TestDecodeBatchRules runs every rule again as the fourth event of a batch:
// the field is named events[3]... and nothing of the batch is returned.
func TestDecodeBatchRules(t *testing.T) {
	dec := event.NewDecoder(event.Limits{})
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			var events []any
			for i, typ := range []event.Type{event.TypeHeartbeat, event.TypePosition, event.TypeBattery} {
				m := valid(typ)
				m["id"] = fmt.Sprintf("ok-%d", i)
				events = append(events, m)
			}
			m := valid(tc.typ)
			if tc.mutate != nil {
				tc.mutate(m)
			}
			events = append(events, m)
			evs, err := dec.DecodeBatch(encode(t, obj{"events": events}), origin, now)
			if tc.ok {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				if len(evs) != 4 {
					t.Fatalf("got %d events, want 4", len(evs))
				}
				return
			}
			if evs != nil {
				t.Errorf("got %d events with an error, want none (all or nothing)", len(evs))
			}
			want := "events[3]"
			if tc.field != "" {
				want += "." + tc.field
			}
			checkErr(t, err, want, event.ErrInvalid)
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	dec := event.NewDecoder(event.Limits{})
	hb := string(encode(t, valid(event.TypeHeartbeat)))
	tests := []struct {
		name    string
		payload string
		field   string
		reason  string // substring of the reason
	}{
		{"empty", "", "", "empty"},
		{"whitespace", "  \n", "", "empty"},
		{"truncated", hb[:len(hb)-3], "", "truncated"},
		{"not JSON", "hello", "", "malformed"},
		{"null", "null", "v", ""},
		{"array", "[" + hb + "]", "", "wrong type"},
		{"string", `"x"`, "", "wrong type"},
		{"trailing object", hb + hb, "", "trailing"},
		{"trailing garbage", hb + "x", "", "trailing"},
		{"trailing whitespace is fine", hb + " \n", "-", ""},
		{"unknown field", `{"v":1,"id":"a","ts":"2026-11-29T11:59:00Z","type":"heartbeat","colour":"red"}`, "", `unknown field "colour"`},
		{"unknown field name truncated", `{"` + strings.Repeat("x", 200) + `":1}`, "", "…"},
		{"bad UTF-8", "\xff\xfe{", "", "malformed"},
		{"deep nesting", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dec.Decode([]byte(tc.payload), origin, now)
			if tc.field == "-" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				return
			}
			checkErr(t, err, tc.field, event.ErrInvalid)
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("got %q, want it to contain %q", err, tc.reason)
			}
			if len(err.Error()) > 200 {
				t.Errorf("got a %d-byte error text, want a short one", len(err.Error()))
			}
		})
	}
}

func TestDecodeSizeLimits(t *testing.T) {
	dec := event.NewDecoder(event.Limits{MaxPayload: 300, MaxSamples: 4})
	m := valid(event.TypeHeartbeat)
	m["id"] = strings.Repeat("a", 64)
	small := encode(t, m)
	if _, err := dec.Decode(small, origin, now); err != nil {
		t.Fatalf("got %v for %d bytes, want accepted", err, len(small))
	}
	big := append(small, make([]byte, 301-len(small))...) // padded with NULs to 301 bytes
	_, err := dec.Decode(big, origin, now)
	checkErr(t, err, "", event.ErrTooLarge)
	if errors.Is(err, event.ErrInvalid) {
		t.Errorf("got %v wrapping ErrInvalid too, want only ErrTooLarge", err)
	}

	// Samples: four accepted, five refused.
	mo := valid(event.TypeMotion)
	del(mo, "motion.gyro")
	set(mo, "motion.accel", []any{[]any{0, 0, 1}, []any{0, 0, 1}, []any{0, 0, 1}, []any{0, 0, 1}})
	if _, err := dec.Decode(encode(t, mo), origin, now); err != nil {
		t.Fatalf("got %v for 4 samples, want accepted", err)
	}
	set(mo, "motion.accel", []any{[]any{0, 0, 1}, []any{0, 0, 1}, []any{0, 0, 1}, []any{0, 0, 1}, []any{0, 0, 1}})
	_, err = dec.Decode(encode(t, mo), origin, now)
	checkErr(t, err, "motion.accel", event.ErrInvalid)

	// The default payload limit is 256 KiB.
	if got, want := event.NewDecoder(event.Limits{}).Limits().MaxPayload, 256<<10; got != want {
		t.Errorf("got default MaxPayload %d, want %d", got, want)
	}
	huge := make([]byte, 256<<10+1)
	_, err = event.NewDecoder(event.Limits{}).Decode(huge, origin, now)
	checkErr(t, err, "", event.ErrTooLarge)
}

func TestLimitsDefaults(t *testing.T) {
	got := event.Limits{}.Defaults()
	want := event.Limits{
		MaxPayload: 256 << 10, MaxBatch: 500, MaxBatchBytes: 4 << 20,
		MaxFuture: 5 * time.Minute, LateAfter: 2 * time.Minute, MaxSamples: 4096,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	custom := event.Limits{MaxBatch: 10, LateAfter: time.Hour}.Defaults()
	if custom.MaxBatch != 10 || custom.LateAfter != time.Hour || custom.MaxPayload != 256<<10 {
		t.Errorf("got %+v, want set fields kept and the rest defaulted", custom)
	}
}

func TestDecodeLate(t *testing.T) {
	dec := event.NewDecoder(event.Limits{})
	tests := []struct {
		ts   string
		late bool
	}{
		{"2026-11-29T12:04:59Z", false}, // device clock slightly ahead
		{"2026-11-29T12:00:00Z", false},
		{"2026-11-29T11:58:00Z", false}, // exactly the threshold
		{"2026-11-29T11:57:59Z", true},
		{"2026-11-27T08:00:00Z", true}, // days of store-and-forward: kept, flagged
		{"2021-03-01T00:00:00Z", true},
	}
	for _, tc := range tests {
		t.Run(tc.ts, func(t *testing.T) {
			m := valid(event.TypeButton)
			m["ts"] = tc.ts
			del(m, "position.fix_time")
			ev, err := dec.Decode(encode(t, m), origin, now)
			if err != nil {
				t.Fatalf("got %v, want accepted", err)
			}
			if ev.Late != tc.late {
				t.Errorf("got Late %v, want %v", ev.Late, tc.late)
			}
		})
	}
	// A custom threshold is honoured.
	m := valid(event.TypeHeartbeat)
	m["ts"] = "2026-11-29T11:59:00Z"
	ev, err := event.NewDecoder(event.Limits{LateAfter: 30 * time.Second}).Decode(encode(t, m), origin, now)
	if err != nil || !ev.Late {
		t.Errorf("got Late %v, %v with a 30 s threshold, want late", ev.Late, err)
	}
}

func TestDecodeNormalises(t *testing.T) {
	dec := event.NewDecoder(event.Limits{})
	m := valid(event.TypeButton)
	m["ts"] = "2026-11-29T13:59:30+02:00"
	set(m, "position.fix_time", "2026-11-29T06:59:29-05:00")
	local := now.In(time.FixedZone("X", 3600))
	got, err := dec.Decode(encode(t, m), event.Origin{OrgID: "acme", DeviceID: "da", Source: event.SourceHTTP}, local)
	if err != nil {
		t.Fatal(err)
	}
	speed, heading, alt := 1.4, 90.0, 61.0
	want := event.Event{
		V: 1, OrgID: "acme", DeviceID: "da", MsgID: "m-1", Type: event.TypeButton,
		DeviceTime: time.Date(2026, 11, 29, 11, 59, 30, 0, time.UTC),
		ReceivedAt: now,
		Source:     event.SourceHTTP,
		Position: &event.Position{
			Lat: 53.8008, Lon: -1.5491, AccuracyM: 12.5,
			SpeedMPS: &speed, HeadingDeg: &heading, AltitudeM: &alt,
			FixTime: time.Date(2026, 11, 29, 11, 59, 29, 0, time.UTC),
		},
		Button: &event.Button{Kind: event.ButtonSOS},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	for name, tm := range map[string]time.Time{"device_time": got.DeviceTime, "received_at": got.ReceivedAt, "fix_time": got.Position.FixTime} {
		if tm.Location() != time.UTC {
			t.Errorf("got %s in %v, want UTC", name, tm.Location())
		}
	}
	if !got.IsAlarm() {
		t.Error("got IsAlarm false for an SOS, want true")
	}
	if got, want := got.Key(), "da/m-1"; got != want {
		t.Errorf("got key %q, want %q", got, want)
	}
}

func TestIsAlarm(t *testing.T) {
	tests := []struct {
		ev   event.Event
		want bool
	}{
		{event.Event{Type: event.TypeFall, Fall: &event.Fall{Confidence: 0.2}}, true},
		{event.Event{Type: event.TypeAlarm, Alarm: &event.Alarm{Kind: event.AlarmManDown}}, true},
		{event.Event{Type: event.TypeButton, Button: &event.Button{Kind: event.ButtonSOS}}, true},
		{event.Event{Type: event.TypeButton, Button: &event.Button{Kind: event.ButtonDuress}}, true},
		{event.Event{Type: event.TypeButton, Button: &event.Button{Kind: event.ButtonHelp}}, true},
		{event.Event{Type: event.TypeButton, Button: &event.Button{Kind: event.ButtonCancel}}, false},
		{event.Event{Type: event.TypeButton, Button: &event.Button{Kind: event.ButtonCheckIn}}, false},
		{event.Event{Type: event.TypeButton}, false},
		{event.Event{Type: event.TypePosition}, false},
		{event.Event{Type: event.TypeMotion}, false},
	}
	for _, tc := range tests {
		if got := tc.ev.IsAlarm(); got != tc.want {
			t.Errorf("IsAlarm(%s %+v) = %v, want %v", tc.ev.Type, tc.ev.Button, got, tc.want)
		}
	}
}

func TestDecodeBatch(t *testing.T) {
	dec := event.NewDecoder(event.Limits{})
	batch := func(events ...obj) []byte {
		list := make([]any, len(events))
		for i, e := range events {
			list[i] = e
		}
		return encode(t, obj{"events": list})
	}
	withID := func(m obj, id string) obj { m["id"] = id; return m }

	t.Run("every type in order", func(t *testing.T) {
		var events []obj
		for i, typ := range event.Types {
			events = append(events, withID(valid(typ), fmt.Sprintf("e%d", i)))
		}
		evs, err := dec.DecodeBatch(batch(events...), origin, now)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range evs {
			got = append(got, ev.MsgID+":"+string(ev.Type))
			if ev.DeviceID != "da" || ev.OrgID != "acme" {
				t.Errorf("got identity %s/%s, want acme/da", ev.OrgID, ev.DeviceID)
			}
		}
		want := []string{"e0:position", "e1:heartbeat", "e2:battery", "e3:button", "e4:motion", "e5:fall", "e6:alarm"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})

	tests := []struct {
		name  string
		body  []byte
		field string
		want  error
	}{
		{"events missing", []byte(`{}`), "events", event.ErrInvalid},
		{"events null", []byte(`{"events":null}`), "events", event.ErrInvalid},
		{"events empty", []byte(`{"events":[]}`), "events", event.ErrInvalid},
		{"events object", []byte(`{"events":{}}`), "events", event.ErrInvalid},
		{"not an object", []byte(`[]`), "", event.ErrInvalid},
		{"unknown field", []byte(`{"events":[],"device_id":"db"}`), "", event.ErrInvalid},
		{"trailing data", append(batch(valid(event.TypeHeartbeat)), `{}`...), "", event.ErrInvalid},
		{"null event", []byte(`{"events":[null]}`), "events[0].v", event.ErrInvalid},
		{"event not an object", []byte(`{"events":[7]}`), "events[0]", event.ErrInvalid},
		{"duplicate id", batch(withID(valid(event.TypeHeartbeat), "x"), withID(valid(event.TypeBattery), "y"), withID(valid(event.TypePosition), "x")), "events[2].id", event.ErrInvalid},
		{"wrong type deep", batch(withID(valid(event.TypeHeartbeat), "a"), func() obj { m := valid(event.TypePosition); set(m, "position.lat", true); return m }()), "events[1].position.lat", event.ErrInvalid},
		{"battery out of range", batch(withID(valid(event.TypeHeartbeat), "a"), withID(valid(event.TypeHeartbeat), "b"), withID(valid(event.TypeHeartbeat), "c"), func() obj { m := valid(event.TypeBattery); set(m, "battery.percent", 120); return m }()), "events[3].battery.percent", event.ErrInvalid},
		{"future event", batch(func() obj { m := valid(event.TypeHeartbeat); m["ts"] = "2026-11-29T13:00:00Z"; return m }()), "events[0].ts", event.ErrInvalid},
		{"motion sample", batch(func() obj {
			m := valid(event.TypeMotion)
			set(m, "motion.accel", []any{[]any{0, 0, 1}, []any{0, 0, 1}, []any{0, 0}})
			return m
		}()), "events[0].motion.accel[2]", event.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := dec.DecodeBatch(tc.body, origin, now)
			if evs != nil {
				t.Errorf("got %d events with an error, want none", len(evs))
			}
			checkErr(t, err, tc.field, tc.want)
		})
	}
}

func TestDecodeBatchLimits(t *testing.T) {
	dec := event.NewDecoder(event.Limits{MaxBatch: 3, MaxBatchBytes: 2000, MaxPayload: 400})
	mk := func(n int) []any {
		var list []any
		for i := range n {
			m := valid(event.TypeHeartbeat)
			m["id"] = fmt.Sprint(i)
			list = append(list, m)
		}
		return list
	}
	if _, err := dec.DecodeBatch(encode(t, obj{"events": mk(3)}), origin, now); err != nil {
		t.Fatalf("got %v for 3 events, want accepted", err)
	}

	_, err := dec.DecodeBatch(encode(t, obj{"events": mk(4)}), origin, now)
	checkErr(t, err, "events", event.ErrTooLarge)

	body := encode(t, obj{"events": mk(1)})
	body = append(body, make([]byte, 2001-len(body))...)
	_, err = dec.DecodeBatch(body, origin, now)
	checkErr(t, err, "", event.ErrTooLarge)

	// One event above MaxPayload refuses the batch, naming it. (Built by
	// hand: json.Marshal would compact the padding away.) Only whitespace
	// inside the event's value counts, as that is what Decode is given.
	first := encode(t, mk(1)[0])
	second := encode(t, valid(event.TypeHeartbeat))
	second = append([]byte("{"+strings.Repeat(" ", 401-len(second))), second[1:]...) // whitespace inside the value counts
	body = []byte(`{"events":[` + string(first) + `,` + string(second) + `]}`)
	_, err = dec.DecodeBatch(body, origin, now)
	checkErr(t, err, "events[1]", event.ErrTooLarge)

	// Defaults: 500 events and 4 MiB.
	d := event.NewDecoder(event.Limits{})
	if _, err := d.DecodeBatch(encode(t, obj{"events": mk(500)}), origin, now); err != nil {
		t.Fatalf("got %v for 500 events, want accepted", err)
	}
	_, err = d.DecodeBatch(encode(t, obj{"events": mk(501)}), origin, now)
	checkErr(t, err, "events", event.ErrTooLarge)
	_, err = d.DecodeBatch(make([]byte, 4<<20+1), origin, now)
	checkErr(t, err, "", event.ErrTooLarge)
}

// TestErrorsNeverEchoValues proves that refusing a coordinate (personal
// data) or a cancel code (a secret) never puts the value in the error text.
func TestErrorsNeverEchoValues(t *testing.T) {
	const secret = "8675309123456789999"
	dec := event.NewDecoder(event.Limits{})
	tests := []struct {
		name   string
		mutate func(m obj)
		values []string
	}{
		{"lat out of range", func(m obj) { set(m, "position.lat", 91.123456789) }, []string{"91.123456789", "91.12"}},
		{"lon out of range", func(m obj) { set(m, "position.lon", -181.98765) }, []string{"181.98765", "181.98"}},
		{"lat as string", func(m obj) { set(m, "position.lat", "53.80123457") }, []string{"53.80123457", "53.80"}},
		{"lon as string", func(m obj) { set(m, "position.lon", "-1.54321987") }, []string{"1.54321987"}},
		{"accuracy", func(m obj) { set(m, "position.accuracy_m", 123456.789) }, []string{"123456"}},
		{"speed", func(m obj) { set(m, "position.speed_mps", 999.321) }, []string{"999.321"}},
		{"altitude", func(m obj) { set(m, "position.altitude_m", 98765.4) }, []string{"98765"}},
		{"fix_time", func(m obj) { set(m, "position.fix_time", "2019-07-04T01:02:03Z") }, []string{"2019-07-04", "01:02:03"}},
		{"fix_time malformed", func(m obj) { set(m, "position.fix_time", "53.80123457,-1.54321987") }, []string{"53.80123457", "1.54321987"}},
		{"null island", func(m obj) { set(m, "position.lat", 0.0); set(m, "position.lon", 0.0) }, nil},
		{"code too long", func(m obj) { set(m, "button.kind", "cancel"); set(m, "button.code", secret) }, []string{secret, "8675309"}},
		{"code on sos", func(m obj) { set(m, "button.code", "8675") }, []string{"8675"}},
		{"code wrong type", func(m obj) { set(m, "button.code", 8675309) }, []string{"8675309"}},
		{"unknown kind", func(m obj) { set(m, "button.kind", "53.80123457") }, []string{"53.80123457"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := valid(event.TypeButton)
			tc.mutate(m)
			_, err := dec.Decode(encode(t, m), origin, now)
			if err == nil {
				t.Fatal("got nil error, want a refusal")
			}
			for _, v := range append(tc.values, "53.8008", "-1.5491") {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error %q contains the submitted value %q", err, v)
				}
			}
			// The batch error wraps the same text.
			_, err = dec.DecodeBatch(encode(t, obj{"events": []any{m}}), origin, now)
			for _, v := range tc.values {
				if err == nil || strings.Contains(err.Error(), v) {
					t.Errorf("batch error %v contains the submitted value %q or is nil", err, v)
				}
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	dec := event.NewDecoder(event.Limits{})
	for _, typ := range event.Types {
		t.Run(string(typ), func(t *testing.T) {
			m := valid(typ)
			m["ts"] = "2026-11-29T11:50:00.123456789Z" // late, with nanoseconds
			if _, ok := m["position"]; ok {
				set(m, "position.fix_time", "2026-11-29T11:49:59.5+01:00")
			}
			ev, err := dec.Decode(encode(t, m), origin, now)
			if err != nil {
				t.Fatal(err)
			}
			if !ev.Late {
				t.Fatal("got Late false, want true")
			}
			b, err := event.Marshal(&ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := event.Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if diff := cmp.Diff(ev, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnmarshalRefuses(t *testing.T) {
	ev, err := event.NewDecoder(event.Limits{}).Decode(encode(t, valid(event.TypeBattery)), origin, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := event.Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	var base obj
	if err := json.Unmarshal(b, &base); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(m obj)
		field  string
	}{
		{"version 2", func(m obj) { m["v"] = 2 }, "v"},
		{"version 0", func(m obj) { m["v"] = 0 }, "v"},
		{"version missing", func(m obj) { delete(m, "v") }, "v"},
		{"unknown field from a newer producer", func(m obj) { m["risk_score"] = 0.4 }, ""},
		{"device_id missing", func(m obj) { delete(m, "device_id") }, "device_id"},
		{"msg_id missing", func(m obj) { delete(m, "msg_id") }, "device_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := obj{}
			for k, v := range base {
				m[k] = v
			}
			tc.mutate(m)
			_, err := event.Unmarshal(encode(t, m))
			checkErr(t, err, tc.field, event.ErrInvalid)
			if !strings.HasPrefix(err.Error(), "unmarshal event: ") {
				t.Errorf("got %q, want the operation as prefix", err)
			}
		})
	}
	if _, err := event.Unmarshal(append(b, '}')); !errors.Is(err, event.ErrInvalid) {
		t.Errorf("got %v for trailing data, want ErrInvalid", err)
	}
}

func TestLogValuesRedact(t *testing.T) {
	p := event.Position{Lat: 53.80123457, Lon: -1.54321987, AccuracyM: 5}
	if s := p.LogValue().String(); strings.Contains(s, "53.8") || strings.Contains(s, "1.54") {
		t.Errorf("position log value %q holds a coordinate", s)
	}
	b := event.Button{Kind: event.ButtonCancel, Code: "8675309"}
	if s := b.LogValue().String(); strings.Contains(s, "8675309") || s != "cancel" {
		t.Errorf("button log value %q, want just the kind", s)
	}
}

func TestFieldErrorText(t *testing.T) {
	_, err := event.NewDecoder(event.Limits{}).Decode([]byte(`{"v":3}`), origin, now)
	if got, want := err.Error(), "event: v: must be 1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	_, err = event.NewDecoder(event.Limits{}).Decode([]byte(`{}{}`), origin, now)
	if got, want := err.Error(), "event: trailing data after the JSON object"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestDeviceAPIExamples keeps docs/device-api.md honest: every example
// event in it is accepted, and the types it documents are all of them.
func TestDeviceAPIExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/device-api.md")
	if err != nil {
		t.Fatal(err)
	}
	dec := event.NewDecoder(event.Limits{})
	seen := map[event.Type]bool{}
	blocks := strings.Split(string(doc), "```json\n")[1:]
	for _, b := range blocks {
		body := b[:strings.Index(b, "```")]
		if strings.Contains(body, `"error"`) {
			continue
		}
		ev, err := dec.Decode([]byte(body), origin, now)
		if err != nil {
			t.Errorf("example refused: %v\n%s", err, body)
			continue
		}
		seen[ev.Type] = true
	}
	for _, typ := range event.Types {
		if !seen[typ] {
			t.Errorf("no example of a %s event", typ)
		}
	}
}
