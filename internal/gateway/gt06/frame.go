// Package gt06 speaks the GT06/Concox binary tracker protocol over TCP:
// cheap personal trackers and SOS pendants that cannot do MQTT or TLS.
// It cuts frames from the byte stream (Split), decodes the messages that
// matter for safety (login, heartbeat, location, alarm) into Vigil's event
// schema, acknowledges each one only after it is durable, and refuses
// everything from a connection until a registered IMEI has logged in.
//
// The protocol has no secret: the IMEI is the only identity. The listener
// is therefore off unless configured, each IMEI must be registered to one
// device, an IMEI in use from two places raises a security event, and
// docs/trackers.md says how to run it (a private APN or VPN).
//
// Must not import: the store, the bus, safety or alert code, web or app —
// a gateway only speaks a wire protocol and hands events on.
package gt06

import (
	"bytes"
	"errors"
	"fmt"
)

// Frame marks.
var (
	startShort = []byte{0x78, 0x78} // 1-byte length
	startLong  = []byte{0x79, 0x79} // 2-byte length ("extended")
	stop       = []byte{0x0d, 0x0a}
)

// MaxFrame is the largest frame accepted; a GT06 message is at most a few
// hundred bytes (WiFi scans are the longest).
const MaxFrame = 2048

// ErrFrame is returned (wrapped) for bytes that are not a GT06 frame: the
// connection is out of step and must be closed.
var ErrFrame = errors.New("gt06: not a frame")

// Split is a bufio.SplitFunc that cuts one frame (start mark to stop mark
// inclusive). It frames on the length field when the stop mark is where
// the length says; some models put 0 or a wrong value there (WiFi scans),
// so otherwise it takes the first stop mark after the header.
func Split(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if len(data) == 0 {
		return 0, nil, nil
	}
	if len(data) < 2 {
		if atEOF {
			return 0, nil, fmt.Errorf("%w: %d stray bytes", ErrFrame, len(data))
		}
		return 0, nil, nil
	}
	var hdr, length int
	switch {
	case bytes.HasPrefix(data, startShort):
		hdr = 3
		if len(data) < hdr {
			break
		}
		length = int(data[2])
	case bytes.HasPrefix(data, startLong):
		hdr = 4
		if len(data) < hdr {
			break
		}
		length = int(data[2])<<8 | int(data[3])
	default:
		return 0, nil, fmt.Errorf("%w: bad start mark %x", ErrFrame, data[:2])
	}
	if len(data) < hdr {
		if atEOF {
			return 0, nil, fmt.Errorf("%w: truncated header", ErrFrame)
		}
		return 0, nil, nil
	}
	end := hdr + length + len(stop)
	if len(data) >= end && bytes.Equal(data[end-2:end], stop) && end <= MaxFrame {
		return end, data[:end], nil
	}
	if len(data) >= end || atEOF {
		// The length is wrong: take the first stop mark after the header.
		if i := bytes.Index(data[hdr:], stop); i >= 0 && hdr+i+2 <= MaxFrame {
			n := hdr + i + 2
			return n, data[:n], nil
		}
		if atEOF || len(data) >= MaxFrame {
			return 0, nil, fmt.Errorf("%w: no stop mark", ErrFrame)
		}
	}
	if len(data) >= MaxFrame {
		return 0, nil, fmt.Errorf("%w: longer than %d bytes", ErrFrame, MaxFrame)
	}
	return 0, nil, nil
}

// Frame is one cut frame.
type Frame struct {
	Extended bool   // 79 79 start, 2-byte length
	Proto    byte   // protocol number
	Content  []byte // between the protocol number and the serial number
	Serial   uint16
	// HasSerial is false for the short keep-alive (78 78 01 08 0D 0A),
	// which carries neither serial nor checksum.
	HasSerial bool
	// CRCOK says whether the CRC-ITU matched. Many clones compute it
	// wrongly; the caller decides (it counts mismatches and accepts them:
	// TCP already guards against corruption, and the CRC is no defence
	// against forgery).
	CRCOK bool
}

// Parse reads a frame cut by Split.
func Parse(b []byte) (Frame, error) {
	var f Frame
	hdr := 3
	switch {
	case bytes.HasPrefix(b, startShort):
	case bytes.HasPrefix(b, startLong):
		hdr, f.Extended = 4, true
	default:
		return f, fmt.Errorf("%w: bad start mark", ErrFrame)
	}
	if len(b) < hdr+1+len(stop) || !bytes.HasSuffix(b, stop) {
		return f, fmt.Errorf("%w: %d bytes", ErrFrame, len(b))
	}
	body := b[hdr : len(b)-2] // protocol number … error check
	f.Proto = body[0]
	if len(body) < 5 {
		// Protocol number only (the short keep-alive), or too short for a
		// serial and checksum.
		if len(body) != 1 {
			return f, fmt.Errorf("%w: body of %d bytes", ErrFrame, len(body))
		}
		f.CRCOK = true
		return f, nil
	}
	f.HasSerial = true
	f.Content = body[1 : len(body)-4]
	f.Serial = uint16(body[len(body)-4])<<8 | uint16(body[len(body)-3])
	want := uint16(body[len(body)-2])<<8 | uint16(body[len(body)-1])
	f.CRCOK = CRC(b[2:len(b)-4]) == want
	return f, nil
}

// CRC is CRC-ITU (CRC-16/X-25): reflected polynomial 0x1021, initial value
// and final XOR 0xFFFF. The check value of "123456789" is 0x906E.
func CRC(b []byte) uint16 {
	crc := uint16(0xffff)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x8408
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

// Ack is the reply a terminal expects for a login, heartbeat, location or
// alarm packet: 78 78 05 <proto> <serial> <crc> 0D 0A.
func Ack(proto byte, serial uint16) []byte {
	b := []byte{0x78, 0x78, 0x05, proto, byte(serial >> 8), byte(serial)}
	c := CRC(b[2:])
	return append(b, byte(c>>8), byte(c), 0x0d, 0x0a)
}

// TimeReply answers a time request (0x8A) with the current UTC time.
func TimeReply(serial uint16, year, month, day, hour, minute, second int) []byte {
	b := []byte{0x78, 0x78, 0x0b, 0x8a, byte(year % 100), byte(month), byte(day), byte(hour), byte(minute), byte(second),
		byte(serial >> 8), byte(serial)}
	c := CRC(b[2:])
	return append(b, byte(c>>8), byte(c), 0x0d, 0x0a)
}
