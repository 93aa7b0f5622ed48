package gt06

import (
	"encoding/hex"
	"math"
	"time"
)

// The encoders below make frames as a terminal does, for simulators and
// tests: Vigil itself only sends ACKs and time replies.

// EncodeFrame builds a 78 78 frame around content, with its CRC.
func EncodeFrame(proto byte, content []byte, serial uint16) []byte {
	b := []byte{0x78, 0x78, byte(len(content) + 5), proto}
	b = append(b, content...)
	b = append(b, byte(serial>>8), byte(serial))
	c := CRC(b[2:])
	return append(b, byte(c>>8), byte(c), 0x0d, 0x0a)
}

// EncodeLogin is a login (0x01) for a 15-digit IMEI.
func EncodeLogin(imei string, serial uint16) []byte {
	id, err := hex.DecodeString("0" + imei)
	if err != nil || len(id) != 8 {
		panic("gt06: EncodeLogin: not a 15-digit IMEI")
	}
	return EncodeFrame(ProtoLogin, id, serial)
}

// EncodeGPS is a GPS block: a valid fix with 9 satellites, speedKmh and a
// course of 0°.
func EncodeGPS(at time.Time, lat, lon float64, speedKmh int) []byte {
	at = at.UTC()
	cs := 1 << 12
	if lat >= 0 {
		cs |= 1 << 10
	}
	if lon < 0 {
		cs |= 1 << 11
	}
	la, lo := uint32(math.Round(math.Abs(lat)*1_800_000)), uint32(math.Round(math.Abs(lon)*1_800_000))
	return []byte{byte(at.Year() - 2000), byte(at.Month()), byte(at.Day()), byte(at.Hour()), byte(at.Minute()), byte(at.Second()),
		0xc9, byte(la >> 24), byte(la >> 16), byte(la >> 8), byte(la), byte(lo >> 24), byte(lo >> 16), byte(lo >> 8), byte(lo),
		byte(speedKmh), byte(cs >> 8), byte(cs)}
}

// lbsBlock is a fixed cell (MCC 234, MNC 10) after its length byte.
var lbsBlock = []byte{9, 0x00, 0xea, 0x0a, 0x1f, 0x40, 0x00, 0x12, 0x34}

// EncodeLocation is a GPS+LBS location (0x12).
func EncodeLocation(at time.Time, lat, lon float64, serial uint16) []byte {
	return EncodeFrame(ProtoGPSLBS2, append(EncodeGPS(at, lat, lon, 4), lbsBlock[1:]...), serial)
}

// EncodeAlarm is a GPS+LBS+status alarm packet (0x16) with alarm code
// alarm (AlarmSOS, AlarmFall, …) and voltage level 0–6.
func EncodeAlarm(at time.Time, lat, lon float64, alarm byte, level byte, serial uint16) []byte {
	c := append(EncodeGPS(at, lat, lon, 0), lbsBlock...)
	c = append(c, 0x40, level, 4, alarm, 0x02)
	return EncodeFrame(ProtoAlarm, c, serial)
}
