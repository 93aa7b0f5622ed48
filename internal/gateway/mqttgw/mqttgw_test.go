package mqttgw_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/gateway/mqttgw"
	"vigil/internal/vigiltest"
)

// devices is the Authenticator: two devices of org "acme".
type devices map[string]string

func (d devices) AuthenticateDevice(_ context.Context, id, secret string) (string, bool, error) {
	if s, ok := d[id]; ok && s == secret {
		return "acme", true, nil
	}
	return "", false, nil
}

// sink is the Publisher: it records what became "durable", or fails.
type sink struct {
	mu   sync.Mutex
	evs  []event.Event
	fail bool
}

func (s *sink) PublishEvent(_ context.Context, ev *event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("jetstream unavailable")
	}
	s.evs = append(s.evs, *ev)
	return nil
}

func (s *sink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.evs {
		out = append(out, e.DeviceID+"/"+e.MsgID)
	}
	return out
}

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func sos(id string) []byte {
	return fmt.Appendf(nil, `{"v":1,"id":%q,"ts":"2026-11-29T11:59:59Z","type":"button","button":{"kind":"sos"},"position":{"lat":53.8,"lon":-1.55,"accuracy_m":8}}`, id)
}

type env struct {
	gw     *mqttgw.Gateway
	sink   *sink
	client func(v byte) *vigiltest.RawMQTT
}

func start(t *testing.T) *env {
	t.Helper()
	srvTLS, cliTLS := vigiltest.TestTLS(t)
	s := &sink{}
	devs := devices{"da": "secret-a", "db": "secret-b"}
	gw, err := mqttgw.New(mqttgw.Config{Listen: "127.0.0.1:0", MaxPacketBytes: 64 << 10, ConnectTimeout: 300 * time.Millisecond}, srvTLS, devs, s,
		event.NewDecoder(event.Limits{MaxPayload: 32 << 10}), clock.Func(func() time.Time { return now }),
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	return &env{gw: gw, sink: s, client: func(v byte) *vigiltest.RawMQTT {
		return vigiltest.DialRawMQTT(t, gw.Addr(), cliTLS, v)
	}}
}

func (e *env) connected(t *testing.T, v byte, id, secret string) *vigiltest.RawMQTT {
	t.Helper()
	c := e.client(v)
	code, err := c.Connect(id, id, secret)
	if err != nil || code != 0 {
		t.Fatalf("connect %s v%d: code %#x, err %v", id, v, code, err)
	}
	return c
}

func puback(t *testing.T, c *vigiltest.RawMQTT, id uint16) byte {
	t.Helper()
	pk, err := c.Read(5 * time.Second)
	if err != nil {
		t.Fatalf("read PUBACK %d: %v", id, err)
	}
	if pk.FixedHeader.Type != packets.Puback || pk.PacketID != id {
		t.Fatalf("got packet type %d id %d, want PUBACK %d", pk.FixedHeader.Type, pk.PacketID, id)
	}
	return pk.ReasonCode
}

func TestConnectRefusals(t *testing.T) {
	e := start(t)
	for _, tc := range []struct {
		name, clientID, user, pass string
		want5, want4               byte
	}{
		{"wrong secret", "da", "da", "nope", 0x86, 0x05},
		{"unknown device", "dz", "dz", "secret-a", 0x86, 0x05},
		{"no credentials", "da", "", "", 0x85, 0x02},
		{"client id of another device", "db", "da", "secret-a", 0x85, 0x02},
		{"wildcard client id", "#", "#", "secret-a", 0x85, 0x02},
		{"plus client id", "+", "+", "secret-a", 0x85, 0x02},
		{"slash client id", "a/b", "a/b", "secret-a", 0x85, 0x02},
		{"NUL client id", "d\x00a", "d\x00a", "secret-a", 0x85, 0x02},
		{"invalid UTF-8 client id", "d\xff", "d\xff", "secret-a", 0x85, 0x02},
	} {
		for _, v := range []byte{5, 4} {
			t.Run(fmt.Sprintf("%s/v%d", tc.name, v), func(t *testing.T) {
				c := e.client(v)
				code, err := c.Connect(tc.clientID, tc.user, tc.pass)
				want := tc.want5
				if v == 4 {
					want = tc.want4
				}
				if err == nil && code != want {
					t.Errorf("CONNACK code %#x, want %#x", code, want)
				}
				if err != nil && !errors.Is(err, io.EOF) {
					// mochi refuses some malformed CONNECTs (NUL, bad
					// UTF-8) while decoding, before any hook: a closed
					// connection is a refusal too.
					t.Logf("connection closed without CONNACK: %v", err)
				}
				if !c.Closed(2 * time.Second) {
					t.Error("connection still open after refused CONNECT")
				}
			})
		}
	}
	if got := e.sink.ids(); len(got) != 0 {
		t.Errorf("events reached the pipeline: %v", got)
	}
}

func TestPublishOwnTopicIsDurableBeforePuback(t *testing.T) {
	e := start(t)
	for _, v := range []byte{5, 4} {
		c := e.connected(t, v, "da", "secret-a")
		id := fmt.Sprintf("m-v%d", v)
		if err := c.Publish(mqttgw.EventsTopic("da"), 1, 7, sos(id)); err != nil {
			t.Fatal(err)
		}
		if code := puback(t, c, 7); code != 0 {
			t.Fatalf("v%d PUBACK code %#x, want 0", v, code)
		}
		// PUBACK was read, so the event must already be in the sink.
		found := false
		for _, k := range e.sink.ids() {
			if k == "da/"+id {
				found = true
			}
		}
		if !found {
			t.Fatalf("v%d: PUBACKed %s not in the pipeline", v, id)
		}
	}
}

func TestACLDeniesForeignTopics(t *testing.T) {
	e := start(t)
	// MQTT 5: PUBACK 0x87, connection kept, nothing in the pipeline.
	a := e.connected(t, 5, "da", "secret-a")
	for i, topic := range []string{"v1/devices/db/events", "v1/devices/db/motion", "v1/devices/da/commands", "v1/devices/da", "other"} {
		id := uint16(10 + i)
		if err := a.Publish(topic, 1, id, sos(fmt.Sprintf("x%d", i))); err != nil {
			t.Fatal(err)
		}
		if code := puback(t, a, id); code != 0x87 {
			t.Errorf("publish to %q: PUBACK %#x, want 0x87", topic, code)
		}
	}
	if err := a.Subscribe(30, "#", "+/#", "$SYS/#", "v1/devices/db/commands", "v1/devices/+/commands", "$share/g/v1/devices/db/commands", "v1/devices/da/commands"); err != nil {
		t.Fatal(err)
	}
	pk, err := a.Read(5 * time.Second)
	if err != nil || pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("want SUBACK, got %v %v", pk.FixedHeader.Type, err)
	}
	want := []byte{0x87, 0x87, 0x87, 0x87, 0x87, 0x87, 0x01}
	if fmt.Sprint(pk.ReasonCodes) != fmt.Sprint(want) {
		t.Errorf("SUBACK codes %x, want %x", pk.ReasonCodes, want)
	}
	if got := e.sink.ids(); len(got) != 0 {
		t.Fatalf("refused messages reached the pipeline: %v", got)
	}
	// B's commands never reach A; A's own do.
	b := e.connected(t, 5, "db", "secret-b")
	_ = b
	if err := e.gw.SendCommand("db", []byte(`{"cmd":"locate"}`)); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.SendCommand("da", []byte(`{"cmd":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	for {
		pk, err := a.Read(5 * time.Second)
		if err != nil {
			t.Fatalf("A did not get its own command: %v", err)
		}
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		if pk.TopicName != mqttgw.CommandsTopic("da") || string(pk.Payload) != `{"cmd":"ping"}` {
			t.Fatalf("A received %q %s", pk.TopicName, pk.Payload)
		}
		break
	}
	// MQTT 3.1.1 has no negative PUBACK: the connection is closed.
	c4 := e.connected(t, 4, "db", "secret-b")
	if err := c4.Publish("v1/devices/da/events", 1, 3, sos("y")); err != nil {
		t.Fatal(err)
	}
	if !c4.Closed(3 * time.Second) {
		t.Error("3.1.1 client still connected after publishing to a foreign topic")
	}
	if got := e.sink.ids(); len(got) != 0 {
		t.Fatalf("refused messages reached the pipeline: %v", got)
	}
}

// Each hostile input is followed by a valid SOS, which must still be
// delivered and acknowledged (security row 10).
func TestHostileInputThenSOS(t *testing.T) {
	e := start(t)
	big := make([]byte, 40<<10)
	for i := range big {
		big[i] = 'a'
	}
	cases := []struct {
		name    string
		payload []byte
		topic   string
		want5   byte
	}{
		{"not JSON", []byte("\x00\x01garbage"), "", 0x99},
		{"empty", nil, "", 0x99},
		{"unknown field", []byte(`{"v":1,"id":"a","ts":"2026-11-29T11:59:59Z","type":"heartbeat","evil":1}`), "", 0x99},
		{"lat out of range", []byte(`{"v":1,"id":"a","ts":"2026-11-29T11:59:59Z","type":"position","position":{"lat":91,"lon":0,"accuracy_m":5}}`), "", 0x99},
		{"far future", []byte(`{"v":1,"id":"a","ts":"2027-11-29T11:59:59Z","type":"heartbeat"}`), "", 0x99},
		{"payload over the event limit", big, "", 0x99},
		{"motion on events topic", []byte(`{"v":1,"id":"a","ts":"2026-11-29T11:59:59Z","type":"motion","motion":{"rate_hz":50,"accel":[[0,0,1]]}}`), "", 0x99},
		{"sos on motion topic", sos("a"), mqttgw.MotionTopic("da"), 0x99},
	}
	for _, v := range []byte{5, 4} {
		for i, tc := range cases {
			t.Run(fmt.Sprintf("%s/v%d", tc.name, v), func(t *testing.T) {
				c := e.connected(t, v, "da", "secret-a")
				topic := tc.topic
				if topic == "" {
					topic = mqttgw.EventsTopic("da")
				}
				if err := c.Publish(topic, 1, 1, tc.payload); err != nil {
					t.Fatal(err)
				}
				if v == 5 {
					if code := puback(t, c, 1); code != tc.want5 {
						t.Errorf("PUBACK %#x, want %#x", code, tc.want5)
					}
				} else if !c.Closed(3 * time.Second) {
					t.Fatal("3.1.1: connection not closed after an invalid payload")
				}
				if v == 4 {
					c = e.connected(t, v, "da", "secret-a")
				}
				id := fmt.Sprintf("ok-%d-%d", v, i)
				if err := c.Publish(mqttgw.EventsTopic("da"), 1, 2, sos(id)); err != nil {
					t.Fatal(err)
				}
				if code := puback(t, c, 2); code != 0 {
					t.Fatalf("SOS after hostile input: PUBACK %#x", code)
				}
			})
		}
	}
	for _, k := range e.sink.ids() {
		if k == "da/a" {
			t.Fatal("an invalid message reached the pipeline")
		}
	}
}

func TestMalformedPackets(t *testing.T) {
	e := start(t)
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		// CONNECT claiming a 256 MB remaining length: refused from the
		// fixed header, nothing allocated.
		{"huge remaining length", []byte{0x10, 0xff, 0xff, 0xff, 0x7f}},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"bad protocol name", []byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'X', 'X', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x00}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(5)
			if err := c.Write(tc.raw); err != nil {
				t.Fatal(err)
			}
			if !c.Closed(3 * time.Second) {
				t.Error("connection still open")
			}
		})
	}
	// After an authenticated client sends a PUBLISH with an empty topic or
	// an oversize packet, it is disconnected; the broker still serves.
	c := e.connected(t, 5, "da", "secret-a")
	if err := c.Publish("", 1, 1, sos("z")); err != nil {
		t.Fatal(err)
	}
	if !c.Closed(3 * time.Second) {
		t.Error("empty topic: still connected")
	}
	c = e.connected(t, 5, "da", "secret-a")
	// The server may close while the oversize packet is still being
	// written; a write error is the refusal arriving early.
	if err := c.Publish(mqttgw.EventsTopic("da"), 1, 1, make([]byte, 70<<10)); err == nil && !c.Closed(3*time.Second) {
		t.Error("packet over MaxPacketBytes: still connected")
	}
	c = e.connected(t, 5, "da", "secret-a")
	if err := c.Publish(mqttgw.EventsTopic("da"), 1, 9, sos("after")); err != nil {
		t.Fatal(err)
	}
	if code := puback(t, c, 9); code != 0 {
		t.Fatalf("SOS after malformed packets: %#x", code)
	}
}

func TestBackendFailureNeverAcks(t *testing.T) {
	e := start(t)
	e.sink.mu.Lock()
	e.sink.fail = true
	e.sink.mu.Unlock()
	for _, v := range []byte{5, 4} {
		c := e.connected(t, v, "da", "secret-a")
		if err := c.Publish(mqttgw.EventsTopic("da"), 1, 4, sos("lost")); err != nil {
			t.Fatal(err)
		}
		for {
			pk, err := c.Read(5 * time.Second)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("v%d: server neither acknowledged nor closed", v)
				}
				break // closed: the device keeps the message and retries
			}
			if pk.FixedHeader.Type == packets.Puback && pk.ReasonCode < 0x80 {
				t.Fatalf("v%d: PUBACK success for a message that was not stored", v)
			}
			if pk.FixedHeader.Type == packets.Disconnect && v == 5 && pk.ReasonCode != 0x89 {
				t.Errorf("DISCONNECT reason %#x, want 0x89 server busy", pk.ReasonCode)
			}
		}
	}
}

func TestNoPermissiveHooks(t *testing.T) {
	e := start(t)
	for _, id := range e.gw.HookIDs() {
		if id == "allow-all-auth" {
			t.Fatal("allow-all-auth hook registered")
		}
	}
	if len(e.gw.HookIDs()) == 0 {
		t.Fatal("no hooks: every connection would be refused or the ACL bypassed")
	}
}

// A Will is published by the broker past the ACL: device A could make the
// broker write to B's commands topic. A CONNECT with a Will is refused.
func TestWillRefused(t *testing.T) {
	e := start(t)
	for _, v := range []byte{5, 4} {
		c := e.client(v)
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Connect},
			ProtocolVersion: v,
			Connect: packets.ConnectParams{
				ProtocolName: []byte("MQTT"), ClientIdentifier: "da", Clean: true, Keepalive: 30,
				UsernameFlag: true, Username: []byte("da"), PasswordFlag: true, Password: []byte("secret-a"),
				WillFlag: true, WillTopic: mqttgw.CommandsTopic("db"), WillPayload: []byte(`{"cmd":"silence-alarm"}`), WillQos: 1,
			},
		}
		if err := c.Send(pk); err != nil {
			t.Fatal(err)
		}
		ack, err := c.Read(5 * time.Second)
		want := byte(0x87)
		if v == 4 {
			want = 0x05
		}
		if err != nil || ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != want {
			t.Fatalf("v%d CONNECT with a Will: %v code %#x, want CONNACK %#x", v, err, ack.ReasonCode, want)
		}
	}
}

// A connection that never completes TLS and CONNECT is closed.
func TestIdleConnectionClosed(t *testing.T) {
	e := start(t)
	conn, err := net.Dial("tcp", e.gw.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("idle connection not closed by the server: %v", err)
	}
}

// TestPubackSuccessCode: a QoS 1 PUBLISH carrying properties is answered
// with reason 0x00 (Success), the only success code MQTT 5 defines for
// PUBACK, and without echoing the PUBLISH's properties. (mochi by itself
// answers 0x01 and copies the properties when there are any.)
func TestPubackSuccessCode(t *testing.T) {
	e := start(t)
	c := e.connected(t, 5, "da", "secret-a")
	err := c.Send(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: 5,
		TopicName:       "v1/devices/da/events",
		PacketID:        7,
		Properties: packets.Properties{
			User:              []packets.UserProperty{{Key: "fw", Val: "1.2.3"}},
			PayloadFormat:     1,
			PayloadFormatFlag: true,
			ContentType:       "application/json",
		},
		Payload: sos("props-1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	pk, err := c.Read(5 * time.Second)
	if err != nil || pk.FixedHeader.Type != packets.Puback || pk.PacketID != 7 {
		t.Fatalf("want PUBACK 7, got type %d id %d, %v", pk.FixedHeader.Type, pk.PacketID, err)
	}
	if pk.ReasonCode != 0 {
		t.Errorf("PUBACK reason %#x, want 0x00", pk.ReasonCode)
	}
	if len(pk.Properties.User) != 0 || pk.Properties.ContentType != "" {
		t.Errorf("PUBACK echoes the PUBLISH's properties: %+v", pk.Properties)
	}
}

// TestInvalidTopicNameDisconnects: a PUBLISH to a topic name with a
// wildcard or a leading '$' (or at QoS 2) is a protocol error. It is never dropped
// silently (the device would wait for a PUBACK forever): MQTT 5 gets
// DISCONNECT 0x90, MQTT 3.1.1 a closed connection, and nothing reaches
// the pipeline.
func TestInvalidTopicNameDisconnects(t *testing.T) {
	e := start(t)
	for _, topic := range []string{"$SYS/x", "v1/devices/+/events", "v1/devices/da/#", "$share/g/v1/devices/da/events"} {
		c := e.connected(t, 5, "da", "secret-a")
		if err := c.Publish(topic, 1, 9, sos("bad-topic")); err != nil {
			t.Fatal(err)
		}
		pk, err := c.Read(5 * time.Second)
		if err != nil || pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != 0x90 {
			t.Errorf("v5 publish to %q: got type %d code %#x (%v), want DISCONNECT 0x90", topic, pk.FixedHeader.Type, pk.ReasonCode, err)
		}
		if !c.Closed(5 * time.Second) {
			t.Errorf("v5 publish to %q: connection left open", topic)
		}
		c4 := e.connected(t, 4, "da", "secret-a")
		if err := c4.Publish(topic, 1, 9, sos("bad-topic-4")); err != nil {
			t.Fatal(err)
		}
		if !c4.Closed(5 * time.Second) {
			t.Errorf("v3.1.1 publish to %q: connection left open", topic)
		}
	}
	if got := e.sink.ids(); len(got) != 0 {
		t.Fatalf("invalid topics reached the pipeline: %v", got)
	}
	// QoS 2 is above the announced Maximum QoS 1: refused the same way,
	// never downgraded into a PUBACK the device's QoS 2 flow does not expect.
	for _, v := range []byte{5, 4} {
		c := e.connected(t, v, "da", "secret-a")
		if err := c.Publish("v1/devices/da/events", 2, 11, sos(fmt.Sprintf("qos2-%d", v))); err != nil {
			t.Fatal(err)
		}
		if v == 5 {
			pk, err := c.Read(5 * time.Second)
			if err != nil || pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != 0x9B {
				t.Errorf("v5 QoS 2 publish: got type %d code %#x (%v), want DISCONNECT 0x9B", pk.FixedHeader.Type, pk.ReasonCode, err)
			}
		}
		if !c.Closed(5 * time.Second) {
			t.Errorf("v%d QoS 2 publish: connection left open", v)
		}
	}
	if got := e.sink.ids(); len(got) != 0 {
		t.Fatalf("QoS 2 messages reached the pipeline: %v", got)
	}
	// The device reconnects and its next message is accepted.
	c := e.connected(t, 5, "da", "secret-a")
	if err := c.Publish("v1/devices/da/events", 1, 10, sos("after")); err != nil {
		t.Fatal(err)
	}
	if code := puback(t, c, 10); code != 0 {
		t.Errorf("after reconnecting: PUBACK %#x, want 0", code)
	}
}
