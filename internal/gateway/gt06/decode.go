package gt06

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Protocol numbers this package understands.
const (
	ProtoLogin       = 0x01
	ProtoKeepAlive   = 0x08
	ProtoGPS         = 0x10
	ProtoGPSLBS      = 0x11
	ProtoGPSLBS2     = 0x12
	ProtoHeartbeat   = 0x13
	ProtoAlarm       = 0x16
	ProtoLBSAlarm    = 0x19
	ProtoGPSLBS3     = 0x22
	ProtoHeartbeat2  = 0x23
	ProtoAlarm2      = 0x26
	ProtoAlarm3      = 0x27
	ProtoGPSLBS4     = 0x37
	ProtoGPS4G       = 0xa0
	ProtoTimeRequest = 0x8a
	ProtoCmdReply    = 0x15
	ProtoCmdReply2   = 0x21
	ProtoInfo        = 0x94
)

// Kind is what a message is to Vigil.
type Kind int

// The kinds.
const (
	KindOther       Kind = iota // understood as a frame, carries nothing Vigil uses
	KindLogin                   // the terminal identifies itself by IMEI
	KindKeepAlive               // the short keep-alive: no reply
	KindHeartbeat               // status: battery, charging, signal
	KindLocation                // a GPS fix (valid or not)
	KindAlarm                   // an alarm, with a fix when the packet has GPS
	KindTimeRequest             // the terminal asks for the time
)

// Alarm codes that mean something to Vigil (alarm packets' alarm byte).
// Several codes differ between models; these are the common meanings.
const (
	AlarmSOS        = 0x01
	AlarmLowBattery = 0x0e
	AlarmLowBat2    = 0x0f
	AlarmLowBat3    = 0x19
	AlarmFall       = 0x23
)

// Message is one decoded GT06 message.
type Message struct {
	Kind  Kind
	Proto byte
	// IMEI and TZ come with a login: the terminal's 15-digit IMEI and its
	// time zone (GPS times are local to it when set; 0 is UTC).
	IMEI string
	TZ   time.Duration
	// Fix is the GPS block of a location or alarm packet; nil when the
	// packet has none.
	Fix *Fix
	// Alarm is the alarm byte of an alarm packet (0 for none).
	Alarm byte
	// Status: BatteryPct is -1 when the packet says nothing about the
	// battery; it is derived from the 0–6 voltage level.
	BatteryPct int
	Charging   bool
	GSM        int // 0–4, -1 unknown
}

// Fix is a GPS position.
type Fix struct {
	Time     time.Time
	Lat, Lon float64
	SpeedKmh int
	Course   int
	Sats     int
	Valid    bool // the terminal says the fix is valid
}

// ErrContent is returned (wrapped) for a frame whose content is too short or
// malformed for its protocol number.
var ErrContent = errors.New("gt06: malformed content")

// Decode decodes a parsed frame. tz is the terminal's time zone from its
// login (0 for UTC).
func Decode(f Frame, tz time.Duration) (Message, error) {
	m := Message{Proto: f.Proto, BatteryPct: -1, GSM: -1}
	c := f.Content
	switch {
	case !f.HasSerial && f.Proto == ProtoKeepAlive:
		m.Kind = KindKeepAlive
	case f.Extended:
		m.Kind = KindOther // 7979 frames: command replies, info transfer, extended formats
	case f.Proto == ProtoLogin:
		if len(c) < 8 {
			return m, fmt.Errorf("%w: login of %d bytes", ErrContent, len(c))
		}
		imei := hex.EncodeToString(c[:8])
		if imei[0] != '0' || !digits(imei[1:]) {
			return m, fmt.Errorf("%w: terminal id is not a BCD IMEI", ErrContent)
		}
		m.Kind, m.IMEI = KindLogin, imei[1:]
		if len(c) >= 12 {
			w := int(c[10])<<8 | int(c[11])
			v := w >> 4 // the zone × 100: 800 is UTC+8:00, 530 is UTC+5:30
			zone := time.Duration(v/100)*time.Hour + time.Duration(v%100)*time.Minute
			if w&0x08 != 0 {
				zone = -zone
			}
			if zone >= -12*time.Hour && zone <= 14*time.Hour {
				m.TZ = zone
			}
		}
	case f.Proto == ProtoHeartbeat || f.Proto == ProtoHeartbeat2:
		if len(c) < 3 {
			return m, fmt.Errorf("%w: status of %d bytes", ErrContent, len(c))
		}
		m.Kind = KindHeartbeat
		m.status(c[0], c[1], c[2])
	case f.Proto == ProtoGPS || f.Proto == ProtoGPSLBS || f.Proto == ProtoGPSLBS2 || f.Proto == ProtoGPSLBS3 ||
		f.Proto == ProtoGPSLBS4 || f.Proto == ProtoGPS4G:
		if len(c) == 0 {
			m.Kind = KindOther // some terminals send an empty location as a ping
			break
		}
		fix, err := gps(c, tz)
		if err != nil {
			return m, err
		}
		m.Kind, m.Fix = KindLocation, &fix
	case f.Proto == ProtoAlarm || f.Proto == ProtoAlarm2 || f.Proto == ProtoAlarm3:
		// GPS block, LBS block (its first byte is its length), then
		// terminal info, voltage level, GSM signal, alarm, language.
		if len(c) < gpsLen+5 {
			return m, fmt.Errorf("%w: alarm of %d bytes", ErrContent, len(c))
		}
		fix, err := gps(c, tz)
		if err != nil {
			return m, err
		}
		m.Kind, m.Fix = KindAlarm, &fix
		m.alarmTail(c)
	case f.Proto == ProtoLBSAlarm:
		// LBS only (no GPS), then the same status tail.
		if len(c) < 5 {
			return m, fmt.Errorf("%w: LBS alarm of %d bytes", ErrContent, len(c))
		}
		m.Kind = KindAlarm
		m.alarmTail(c)
	case f.Proto == ProtoTimeRequest:
		m.Kind = KindTimeRequest
	default:
		m.Kind = KindOther
	}
	return m, nil
}

// alarmTail reads terminal info, voltage level, GSM signal and the alarm
// byte from the end of an alarm packet (the language byte is last). The
// tail is read from the end because the LBS part before it differs
// between models.
func (m *Message) alarmTail(c []byte) {
	n := len(c)
	m.status(c[n-5], c[n-4], c[n-3])
	m.Alarm = c[n-2]
}

// status reads terminal info (bit 2: charging), the 0–6 voltage level and
// the 0–4 GSM signal. Out-of-range levels (other models' layouts) are
// left unknown.
func (m *Message) status(info, voltage, gsm byte) {
	m.Charging = info&0x04 != 0
	if voltage <= 6 {
		m.BatteryPct = levelPercent[voltage]
	}
	if gsm <= 4 {
		m.GSM = int(gsm)
	}
}

// levelPercent maps the voltage level (0 no power, 1 extremely low, 2 very
// low — the low-battery alarm —, 3 low, 4 medium, 5 high, 6 full) to a
// battery percentage.
var levelPercent = [7]int{0, 5, 10, 25, 50, 75, 100}

const gpsLen = 18

// gps reads the GPS block: YY MM DD hh mm ss, length/satellites, latitude
// and longitude (degrees × 1,800,000), speed (km/h), course and status.
func gps(c []byte, tz time.Duration) (Fix, error) {
	if len(c) < gpsLen {
		return Fix{}, fmt.Errorf("%w: GPS block of %d bytes", ErrContent, len(c))
	}
	y, mo, d, h, mi, s := int(c[0]), int(c[1]), int(c[2]), int(c[3]), int(c[4]), int(c[5])
	if mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59 {
		return Fix{}, fmt.Errorf("%w: GPS time %02d-%02d-%02d %02d:%02d:%02d", ErrContent, y, mo, d, h, mi, s)
	}
	f := Fix{Time: time.Date(2000+y, time.Month(mo), d, h, mi, s, 0, time.UTC).Add(-tz), Sats: int(c[6] & 0x0f)}
	f.Lat = float64(be32(c[7:11])) / 1_800_000
	f.Lon = float64(be32(c[11:15])) / 1_800_000
	f.SpeedKmh = int(c[15])
	cs := int(c[16])<<8 | int(c[17])
	f.Course = cs & 0x3ff
	if cs&(1<<10) == 0 {
		f.Lat = -f.Lat
	}
	if cs&(1<<11) != 0 {
		f.Lon = -f.Lon
	}
	f.Valid = cs&(1<<12) != 0
	if f.Lat < -90 || f.Lat > 90 || f.Lon < -180 || f.Lon > 180 {
		f.Valid = false
	}
	return f, nil
}

// AccuracyM is an estimate of a fix's accuracy from its satellites: GT06
// reports no HDOP.
func (f Fix) AccuracyM() float64 {
	switch {
	case f.Sats >= 8:
		return 10
	case f.Sats >= 5:
		return 20
	case f.Sats == 4:
		return 30
	}
	return 50
}

// Acked reports whether the terminal expects an ACK for this message (login,
// heartbeat, location and alarm packets, and other short-form packets
// except command replies and information transfer).
func (m Message) Acked(f Frame) bool {
	if !f.HasSerial || f.Extended {
		return false
	}
	switch f.Proto {
	case ProtoCmdReply, ProtoInfo, ProtoTimeRequest:
		return false
	}
	return true
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
