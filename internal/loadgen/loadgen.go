// Package loadgen drives MQTT brokers with QoS 1 publishes from many
// connections and measures what came back: acknowledged messages per
// second and publish→PUBACK latency. `vigil bench` uses it to measure Vigil
// and a peer broker (mosquitto) with the same load in the same run.
//
// It speaks MQTT 5 over TLS with a real client library (paho.golang) or, for
// more than one publish in flight and a cheaper generator, a minimal client
// of its own (raw.go). It must not import store, bus, gateways or app: it
// only knows the wire.
package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// Conn is one client identity.
type Conn struct {
	ClientID, Username, Password string
	Topic                        string
}

// Config describes a load.
type Config struct {
	Addr   string
	TLS    *tls.Config
	Conns  []Conn
	Window int // publishes in flight per connection; default 1 (paho.golang v0.23 stalls with more)
	// Client is "paho" (default: paho.golang, a full client library) or
	// "raw" (this package's minimal MQTT 5 client: cheaper, and any
	// window).
	Client   string
	Messages int           // total messages to acknowledge; the run stops there
	Duration time.Duration // or stop after this long; default 30s
	// Payload returns the body of message seq of a connection.
	Payload func(conn, seq int) []byte
}

// Result is what a run measured.
type Result struct {
	Acked      int64
	Refused    int64
	Errors     int64
	FirstError string
	Elapsed    time.Duration
	P50, P99   time.Duration
	PerSecond  float64
}

// Run connects every client, publishes until Messages are acknowledged or
// Duration passes, and reports.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Window <= 0 {
		cfg.Window = 1
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * time.Second
	}
	if len(cfg.Conns) == 0 {
		return Result{}, errors.New("loadgen: no connections")
	}
	switch cfg.Client {
	case "", "paho":
	case "raw":
		return runRawAll(ctx, cfg)
	default:
		return Result{}, fmt.Errorf("loadgen: client %q: want paho or raw", cfg.Client)
	}
	clients := make([]*paho.Client, len(cfg.Conns))
	for i, c := range cfg.Conns {
		cl, err := connect(ctx, cfg.Addr, cfg.TLS, c)
		if err != nil {
			for _, d := range clients[:i] {
				_ = d.Disconnect(&paho.Disconnect{})
			}
			return Result{}, fmt.Errorf("loadgen: connect %d: %w", i, err)
		}
		clients[i] = cl
	}
	defer func() {
		for _, c := range clients {
			_ = c.Disconnect(&paho.Disconnect{})
		}
	}()

	var acked, refused, errs, budget atomic.Int64
	var firstErr atomic.Value
	budget.Store(int64(cfg.Messages))
	if cfg.Messages <= 0 {
		budget.Store(1 << 62)
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	lat := make([][]time.Duration, len(clients)*cfg.Window)
	var wg sync.WaitGroup
	start := time.Now()
	for i, cl := range clients {
		for w := 0; w < cfg.Window; w++ {
			slot := i*cfg.Window + w
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := w; runCtx.Err() == nil; seq += cfg.Window {
					if budget.Add(-1) < 0 {
						return
					}
					t0 := time.Now()
					pr, err := cl.Publish(runCtx, &paho.Publish{Topic: cfg.Conns[i].Topic, QoS: 1, Payload: cfg.Payload(i, seq)})
					if pr != nil && pr.ReasonCode >= 0x80 {
						// paho returns a refusal as an error too; the
						// connection is fine, the message was refused.
						refused.Add(1)
						continue
					}
					if err != nil {
						if runCtx.Err() == nil {
							if errs.Add(1) == 1 {
								firstErr.Store(err.Error())
							}
						}
						return
					}
					lat[slot] = append(lat[slot], time.Since(t0))
					acked.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	return result(time.Since(start), lat, &acked, &refused, &errs, &firstErr), nil
}

func result(elapsed time.Duration, lat [][]time.Duration, acked, refused, errs *atomic.Int64, firstErr *atomic.Value) Result {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := Result{Acked: acked.Load(), Refused: refused.Load(), Errors: errs.Load(), Elapsed: elapsed}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstError = e
	}
	if len(all) > 0 {
		r.P50 = all[len(all)/2]
		r.P99 = all[len(all)*99/100]
	}
	r.PerSecond = float64(r.Acked) / elapsed.Seconds()
	return r
}

// runRawAll is Run with the raw client.
func runRawAll(ctx context.Context, cfg Config) (Result, error) {
	conns := make([]*rawConn, len(cfg.Conns))
	for i, c := range cfg.Conns {
		rc, err := rawConnect(ctx, cfg.Addr, cfg.TLS, c, cfg.Window)
		if err != nil {
			for _, d := range conns[:i] {
				d.conn.Close()
			}
			return Result{}, fmt.Errorf("loadgen: connect %d: %w", i, err)
		}
		conns[i] = rc
	}
	var acked, refused, errs, budget atomic.Int64
	var firstErr atomic.Value
	budget.Store(int64(cfg.Messages))
	if cfg.Messages <= 0 {
		budget.Store(1 << 62)
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	fail := func(err error) {
		if errs.Add(1) == 1 {
			firstErr.Store(err.Error())
		}
	}
	lat := make([][]time.Duration, len(conns))
	var wg sync.WaitGroup
	start := time.Now()
	for i, rc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runRaw(runCtx, rc, cfg.Conns[i].Topic, i, cfg.Payload, &budget, &acked, &refused, &lat[i], fail)
		}()
	}
	wg.Wait()
	return result(time.Since(start), lat, &acked, &refused, &errs, &firstErr), nil
}

func connect(ctx context.Context, addr string, cfg *tls.Config, c Conn) (*paho.Client, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	// paho writes a PINGREQ right after CONNACK from its own goroutine;
	// without the packet-level lock it can land inside the first PUBLISH.
	cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: c.ClientID, KeepAlive: 60, CleanStart: true}
	if c.Username != "" {
		cp.Username, cp.UsernameFlag = c.Username, true
		cp.Password, cp.PasswordFlag = []byte(c.Password), true
	}
	ca, err := cl.Connect(cctx, cp)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK %#x", ca.ReasonCode)
	}
	return cl, nil
}
