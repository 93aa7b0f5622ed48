package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// rawConn is a minimal MQTT 5 client over TLS for load: CONNECT, QoS 1
// PUBLISH with up to window messages in flight, PUBACK. It does only what
// a load generator needs, so that its own CPU cost stays small next to the
// broker's, and unlike paho.golang v0.23 it keeps more than one publish in
// flight.
type rawConn struct {
	conn    net.Conn
	r       *bufio.Reader
	sent    [1 << 16]atomic.Int64 // send time (unix ns) by packet id
	tokens  chan uint16           // free packet ids; its capacity is the window
	closing atomic.Bool           // we are hanging up: read errors are expected
}

func appendVarint(b []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func rawConnect(ctx context.Context, addr string, cfg *tls.Config, c Conn, window int) (*rawConn, error) {
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	var vh []byte
	vh = appendStr(vh, "MQTT")
	flags := byte(0x02) // clean start
	if c.Username != "" {
		flags |= 0xC0
	}
	vh = append(vh, 5, flags, 0, 60, 0) // version 5, flags, keep-alive 60 s, no properties
	vh = appendStr(vh, c.ClientID)
	if c.Username != "" {
		vh = appendStr(vh, c.Username)
		vh = appendStr(vh, c.Password)
	}
	pk := appendVarint([]byte{0x10}, len(vh))
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(append(pk, vh...)); err != nil {
		conn.Close()
		return nil, err
	}
	rc := &rawConn{conn: conn, r: bufio.NewReaderSize(conn, 16<<10), tokens: make(chan uint16, window)}
	typ, body, err := rc.readPacket()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if typ != 0x20 || len(body) < 2 || body[1] != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK refused (type %#x, body % x)", typ, body[:min(len(body), 2)])
	}
	_ = conn.SetDeadline(time.Time{})
	for i := 1; i <= window; i++ {
		rc.tokens <- uint16(i)
	}
	return rc, nil
}

// readPacket reads one packet: its type nibble (shifted) and its body.
func (rc *rawConn) readPacket() (byte, []byte, error) {
	h, err := rc.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		c, err := rc.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(c&0x7f) * mul
		mul *= 128
		if c&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return 0, nil, err
	}
	return h & 0xf0, body, nil
}

// runRaw drives one connection until the shared budget is spent or ctx is
// done, then waits for its in-flight publishes.
func runRaw(ctx context.Context, rc *rawConn, topic string, conn int, payload func(conn, seq int) []byte,
	budget, acked, refused *atomic.Int64, lat *[]time.Duration, fail func(error)) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // reader
		defer wg.Done()
		for {
			typ, body, err := rc.readPacket()
			if err != nil {
				if ctx.Err() == nil && !rc.closing.Load() {
					fail(err)
				}
				return
			}
			switch typ {
			case 0x40: // PUBACK
				if len(body) < 2 {
					fail(errors.New("short PUBACK"))
					return
				}
				id := binary.BigEndian.Uint16(body)
				if len(body) > 2 && body[2] >= 0x80 {
					refused.Add(1)
				} else {
					acked.Add(1)
					*lat = append(*lat, time.Duration(time.Now().UnixNano()-rc.sent[id].Load()))
				}
				rc.tokens <- id
			case 0xE0: // DISCONNECT
				fail(fmt.Errorf("DISCONNECT % x", body))
				return
			}
		}
	}()
	window := cap(rc.tokens)
	var buf []byte
	seq := 0
	for ctx.Err() == nil && budget.Add(-1) >= 0 {
		var id uint16
		select {
		case id = <-rc.tokens:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		p := payload(conn, seq)
		seq++
		rem := 2 + len(topic) + 2 + 1 + len(p)
		buf = appendVarint(append(buf[:0], 0x32), rem)
		buf = appendStr(buf, topic)
		buf = binary.BigEndian.AppendUint16(buf, id)
		buf = append(buf, 0) // no properties
		buf = append(buf, p...)
		rc.sent[id].Store(time.Now().UnixNano())
		if _, err := rc.conn.Write(buf); err != nil {
			fail(err)
			break
		}
	}
	// Wait for what is in flight (every token back), then hang up.
drain:
	for range window {
		select {
		case <-rc.tokens:
		case <-ctx.Done():
			break drain
		}
	}
	rc.closing.Store(true)
	_, _ = rc.conn.Write([]byte{0xE0, 0})
	rc.conn.Close()
	wg.Wait()
}
