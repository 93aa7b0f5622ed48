// Package vigiltest is the test harness: a raw MQTT client that can speak
// 3.1.1 and 5 and send hostile packets, and helpers to start the app on
// loopback and to get a PostgreSQL schema per test. Only tests import it.
package vigiltest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// RawMQTT is a minimal MQTT client over TLS that sends exactly the packets a
// test builds, so tests can check reason codes packet by packet and send
// malformed input a real client library would refuse to produce.
type RawMQTT struct {
	t       testing.TB
	Conn    net.Conn
	r       *bufio.Reader
	Version byte // 4 (3.1.1) or 5
}

// DialRawMQTT opens a TLS connection.
func DialRawMQTT(t testing.TB, addr string, cfg *tls.Config, version byte) *RawMQTT {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial mqtt %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &RawMQTT{t: t, Conn: conn, r: bufio.NewReader(conn), Version: version}
}

// Connect sends CONNECT and returns the CONNACK reason code.
func (c *RawMQTT) Connect(clientID, user, pass string) (byte, error) {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: c.Version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: clientID,
			Clean:            true,
			Keepalive:        60,
			UsernameFlag:     user != "",
			Username:         []byte(user),
			PasswordFlag:     pass != "",
			Password:         []byte(pass),
		},
	}
	if err := c.Send(pk); err != nil {
		return 0, err
	}
	ack, err := c.Read(5 * time.Second)
	if err != nil {
		return 0, err
	}
	if ack.FixedHeader.Type != packets.Connack {
		return 0, fmt.Errorf("want CONNACK, got packet type %d", ack.FixedHeader.Type)
	}
	return ack.ReasonCode, nil
}

// Publish sends a PUBLISH.
func (c *RawMQTT) Publish(topic string, qos byte, id uint16, payload []byte) error {
	return c.Send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos},
		ProtocolVersion: c.Version,
		TopicName:       topic,
		PacketID:        id,
		Payload:         payload,
	})
}

// Subscribe sends a SUBSCRIBE for filters.
func (c *RawMQTT) Subscribe(id uint16, filters ...string) error {
	subs := make(packets.Subscriptions, 0, len(filters))
	for _, f := range filters {
		subs = append(subs, packets.Subscription{Filter: f, Qos: 1})
	}
	return c.Send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: c.Version,
		PacketID:        id,
		Filters:         subs,
	})
}

// Send encodes and writes one packet.
func (c *RawMQTT) Send(pk packets.Packet) error {
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	default:
		return fmt.Errorf("raw mqtt: cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return fmt.Errorf("raw mqtt: encode: %w", err)
	}
	return c.Write(buf.Bytes())
}

// Write writes raw bytes.
func (c *RawMQTT) Write(b []byte) error {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Conn.Write(b)
	return err
}

// Read reads the next packet; io.EOF (or a reset) means the server closed.
func (c *RawMQTT) Read(timeout time.Duration) (packets.Packet, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
	var pk packets.Packet
	hb, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = c.Version
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	}
	return pk, err
}

// Closed reports whether the server closes the connection within timeout
// (reading and discarding anything it sends first, such as DISCONNECT).
func (c *RawMQTT) Closed(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_, err := c.Read(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false
			}
			return true
		}
	}
	return false
}
