package sim_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"vigil/internal/event"
	"vigil/internal/gateway/mqttgw"
	"vigil/internal/sim"
	"vigil/internal/vigiltest"
)

// received is one PUBLISH the broker's hook saw.
type received struct {
	device, topic string
	ev            event.Event
	err           error
}

// brokerHook authenticates devices, confines them to their own topics and
// validates every payload, like the real gateway, with two scripted
// misbehaviours: every publish from "drefused" is answered 0x87, and the
// first publish from "dflaky" gets its connection dropped instead of a
// PUBACK.
type brokerHook struct {
	mqtt.HookBase
	srv     *mqtt.Server
	secrets map[string]string

	mu         sync.Mutex
	flakyID    string // id of the message whose connection was dropped
	subscribed map[string]bool
	out        chan received
}

func (h *brokerHook) ID() string { return "sim-test" }

func (h *brokerHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnSubscribed:
		return true
	}
	return false
}

func (h *brokerHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	secret, ok := h.secrets[user]
	return ok && cl.ID == user && cl.Properties.ProtocolVersion == 5 && string(pk.Connect.Password) == secret
}

func (h *brokerHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	prefix := "v1/devices/" + cl.ID
	if write {
		return topic == prefix+"/events" || topic == prefix+"/motion"
	}
	return topic == prefix+"/commands"
}

func (h *brokerHook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, codes []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(codes) == 1 && codes[0] < 0x80 {
		h.subscribed[cl.ID] = true
	}
}

func (h *brokerHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	ev, err := decoder.Decode(pk.Payload, event.Origin{OrgID: "o", DeviceID: cl.ID, Source: event.SourceMQTT}, time.Now())
	if err == nil && strings.HasSuffix(pk.TopicName, "/motion") != (ev.Type == event.TypeMotion) {
		err = event.ErrInvalid
	}
	r := received{device: cl.ID, topic: pk.TopicName, ev: ev, err: err}
	h.mu.Lock()
	flaky := cl.ID == "dflaky" && h.flakyID == "" && err == nil
	if flaky {
		h.flakyID = ev.MsgID
	}
	h.mu.Unlock()
	select {
	case h.out <- r:
	default:
	}
	switch {
	case err != nil:
		return pk, packets.ErrPayloadFormatInvalid
	case cl.ID == "drefused":
		return pk, packets.ErrNotAuthorized
	case flaky: // not durable: no PUBACK, drop the connection
		_ = h.srv.DisconnectClient(cl, packets.ErrServerBusy)
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// TestMQTT runs trackers against a real MQTT 5 broker on loopback TLS.
func TestMQTT(t *testing.T) {
	serverTLS, clientTLS := vigiltest.TestTLS(t)
	devices := []sim.Credential{
		{DeviceID: "dgood1", Secret: "secret-good-1"},
		{DeviceID: "dgood2", Secret: "secret-good-2"},
		{DeviceID: "dflaky", Secret: "secret-flaky"},
		{DeviceID: "drefused", Secret: "secret-refused"},
		{DeviceID: "dwrong", Secret: "not-the-secret"},
	}
	hook := &brokerHook{
		secrets: map[string]string{
			"dgood1": "secret-good-1", "dgood2": "secret-good-2", "dflaky": "secret-flaky",
			"drefused": "secret-refused", "dwrong": "the-real-secret",
		},
		subscribed: map[string]bool{},
		out:        make(chan received, 10000),
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hook.srv = srv
	if err := srv.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "tls", Address: "127.0.0.1:0", TLSConfig: serverTLS})
	if err := srv.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mqttgw.CloseServer(srv) })

	logs := &logBuffer{}
	s, err := sim.New(sim.Config{
		MQTTAddr:       ln.Address(),
		TLS:            clientTLS,
		Devices:        devices,
		Rate:           20,
		SOSEvery:       300 * time.Millisecond,
		MotionEvery:    200 * time.Millisecond,
		HeartbeatEvery: time.Second,
		RetryMin:       10 * time.Millisecond,
		Seed:           7,
		Logger:         logs.logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}

	// Wait until the good devices sent every type, the flaky device's
	// dropped message came back, and the refused device was refused twice.
	types := map[event.Type]int{}
	perID := map[string]int{}
	refused, valid := 0, 0
	flakyResent := false
	commandSent := false
	timeout := time.After(15 * time.Second)
	for len(types) < 5 || !flakyResent || refused < 2 || valid < 50 {
		var r received
		select {
		case r = <-hook.out:
		case <-timeout:
			stop()
			t.Fatalf("timed out: types %v, flaky resent %v, refused %d, valid %d", types, flakyResent, refused, valid)
		}
		if r.err != nil {
			t.Errorf("%s sent an invalid payload on %s: %v", r.device, r.topic, r.err)
			continue
		}
		if want := "v1/devices/" + r.device + "/"; !strings.HasPrefix(r.topic, want) {
			t.Errorf("%s published on %s", r.device, r.topic)
		}
		valid++
		perID[r.device+"/"+r.ev.MsgID]++
		switch r.device {
		case "drefused":
			refused++
		case "dflaky":
			hook.mu.Lock()
			flakyResent = flakyResent || (r.ev.MsgID == hook.flakyID && perID["dflaky/"+r.ev.MsgID] == 2)
			hook.mu.Unlock()
		default:
			types[r.ev.Type]++
		}
		hook.mu.Lock()
		sub := hook.subscribed["dgood1"]
		hook.mu.Unlock()
		if sub && !commandSent {
			if err := srv.Publish("v1/devices/dgood1/commands", []byte(`{"cmd":"ping"}`), false, 1); err != nil {
				t.Fatal(err)
			}
			commandSent = true
		}
	}
	// Commands arrive asynchronously; wait for the counter with a deadline.
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Commands == 0 && time.Now().Before(deadline) {
		select {
		case <-hook.out:
		case <-time.After(10 * time.Millisecond):
		}
	}
	stop()

	for key, n := range perID {
		if strings.HasPrefix(key, "drefused/") && n > 1 {
			t.Errorf("refused message %s sent %d times, want no retry", key, n)
		}
	}
	st := s.Stats()
	if st.Refused["puback_0x87"] < 2 {
		t.Errorf("got refused %v, want puback_0x87 ≥ 2", st.Refused)
	}
	if st.Refused["connack_0x86"] < 1 {
		t.Errorf("got refused %v, want connack_0x86 for the wrong secret", st.Refused)
	}
	if st.Reconnects < 1 || st.Errors < 1 || st.Resent < 1 {
		t.Errorf("got reconnects %d errors %d resent %d, want each ≥ 1", st.Reconnects, st.Errors, st.Resent)
	}
	if st.Acked == 0 || st.AckedByType[event.TypeMotion] == 0 || st.AckedByType[event.TypeButton] == 0 {
		t.Errorf("got acked %d by type %v", st.Acked, st.AckedByType)
	}
	if st.Commands == 0 {
		t.Error("command not received")
	}
	if _, ok := st.Refused["puback_0x99"]; ok {
		t.Errorf("got payloads refused as invalid: %v", st.Refused)
	}
	secrets := []string{}
	for _, d := range devices {
		secrets = append(secrets, d.Secret)
	}
	checkLogs(t, logs.String(), secrets...)
	if !bytes.Contains([]byte(logs.String()), []byte("reason=puback_0x87")) {
		t.Error("refusal not logged at debug")
	}
}
