package loadgen_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/gateway/mqttgw"
	"vigil/internal/loadgen"
	"vigil/internal/vigiltest"
)

type anyDevice struct{}

func (anyDevice) AuthenticateDevice(_ context.Context, id, secret string) (string, bool, error) {
	return "acme", secret == "s-"+id, nil
}

type counter struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (c *counter) PublishEvent(_ context.Context, ev *event.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids[ev.Key()] = true
	return nil
}

// The load generator acknowledges exactly the messages it was asked for,
// each one really received by the broker, and reports the refusals: with
// paho (one in flight) and with the raw client (eight in flight).
func TestRunCountsAcks(t *testing.T) {
	for _, tc := range []struct {
		client string
		window int
	}{{"paho", 1}, {"raw", 8}} {
		t.Run(tc.client, func(t *testing.T) { runCountsAcks(t, tc.client, tc.window) })
	}
}

func runCountsAcks(t *testing.T, client string, window int) {
	srvTLS, cliTLS := vigiltest.TestTLS(t)
	c := &counter{ids: map[string]bool{}}
	gw, err := mqttgw.New(mqttgw.Config{Listen: "127.0.0.1:0"}, srvTLS, anyDevice{}, c, event.NewDecoder(event.Limits{}),
		clock.Real{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	var conns []loadgen.Conn
	for i := 0; i < 4; i++ {
		id := fmt.Sprintf("d%d", i)
		conns = append(conns, loadgen.Conn{ClientID: id, Username: id, Password: "s-" + id, Topic: mqttgw.EventsTopic(id)})
	}
	res, err := loadgen.Run(context.Background(), loadgen.Config{Addr: gw.Addr(), TLS: cliTLS, Conns: conns, Messages: 400,
		Duration: time.Minute, Client: client, Window: window,
		Payload: func(conn, seq int) []byte {
			if seq == 7 && conn == 0 {
				return []byte(`{"not":"valid"}`) // refused with 0x99
			}
			return fmt.Appendf(nil, `{"v":1,"id":"m%d","ts":%q,"type":"heartbeat"}`, seq, time.Now().UTC().Format(time.RFC3339Nano))
		}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked+res.Refused != 400 || res.Refused != 1 || res.Errors != 0 {
		t.Fatalf("acked %d refused %d errors %d, want 399/1/0 (%s)", res.Acked, res.Refused, res.Errors, res.FirstError)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if int64(len(c.ids)) != res.Acked {
		t.Fatalf("broker received %d distinct events, load generator counted %d acks", len(c.ids), res.Acked)
	}
	if res.P50 <= 0 || res.P99 < res.P50 {
		t.Fatalf("latencies p50 %v p99 %v", res.P50, res.P99)
	}
}

func TestRunRefusesUnknownClient(t *testing.T) {
	_, err := loadgen.Run(context.Background(), loadgen.Config{Conns: []loadgen.Conn{{ClientID: "x"}}, Client: "mosquitto_pub"})
	if err == nil {
		t.Fatal("unknown client accepted")
	}
}
