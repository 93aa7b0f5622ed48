package sim

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"vigil/internal/event"
)

// The device topics, as documented in docs/device-api.md. They are spelled
// out here because sim must not import the gateway.
func eventsTopic(id string) string   { return "v1/devices/" + id + "/events" }
func motionTopic(id string) string   { return "v1/devices/" + id + "/motion" }
func commandsTopic(id string) string { return "v1/devices/" + id + "/commands" }

// topicFor is where a message of type t is published.
func topicFor(id string, t event.Type) string {
	if t == event.TypeMotion {
		return motionTopic(id)
	}
	return eventsTopic(id)
}

const (
	publishTimeout = 30 * time.Second
	connectTimeout = 10 * time.Second
)

// runMQTT is one tracker. It connects (MQTT 5 over TLS, client id =
// username = device id, password = secret, clean start), subscribes to its
// commands topic, and publishes its queue one QoS 1 message at a time while
// generating events. A message leaves the queue on PUBACK: success
// (< 0x80) counts as acked, a refusal (≥ 0x80) is counted by reason and
// not retried. A lost connection or a missing PUBACK keeps the message,
// byte for byte, for the next attempt; the device reconnects with backoff
// and keeps generating (store-and-forward) while it is offline.
//
// The paho client runs its own goroutines per connection, and runMQTT one
// watcher; it waits for all of them (Client.Done) before it reconnects or
// returns.
func (d *device) runMQTT(ctx context.Context) {
	if !sleep(ctx, d.delay) {
		return
	}
	now := time.Now()
	d.sched.start(now)
	d.wearer.start(now)
	attempt, connects := 0, 0
	for {
		cli, err := d.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			attempt++
			d.s.log.Debug("sim: mqtt connect failed", "device_id", d.cred.DeviceID, "err", err)
			if !d.idle(ctx, time.Now().Add(d.sched.backoff(d.s.cfg.RetryMin, attempt))) {
				return
			}
			continue
		}
		if connects++; connects > 1 {
			d.s.update(func(st *Stats) { st.Reconnects++ })
		}
		// connCtx ends with the connection: paho (v0.23.0) does not wake a
		// Publish waiting for its PUBACK when the connection is lost with
		// no session to keep, so the wait is bound to this context.
		connCtx, connCancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			select {
			case <-cli.Done():
			case <-connCtx.Done():
			}
			connCancel()
		}()
		d.subscribe(connCtx, cli)
		d.serve(connCtx, cli)
		connCancel()
		<-watched
		if ctx.Err() != nil {
			_ = cli.Disconnect(&paho.Disconnect{ReasonCode: 0}) // waits for the client's goroutines
			<-cli.Done()
			return
		}
		<-cli.Done()
		d.failed() // the connection was lost
		d.s.log.Debug("sim: mqtt connection lost", "device_id", d.cred.DeviceID)
		// Reconnect at once if the server answered anything on this
		// connection; a server that drops us before any PUBACK (busy,
		// cannot store) gets the same backoff as a failed connect.
		if d.answered {
			attempt = 0
			continue
		}
		attempt++
		if !d.idle(ctx, time.Now().Add(d.sched.backoff(d.s.cfg.RetryMin, attempt))) {
			return
		}
	}
}

// connect dials TLS and performs the MQTT 5 handshake. A refused CONNACK
// is counted as "connack_0x.."; other failures as errors.
func (d *device) connect(ctx context.Context) (*paho.Client, error) {
	id := d.cred.DeviceID
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	tlsCfg := d.s.cfg.TLS
	cert := d.s.clientCert(ctx, id)
	if cert != nil {
		if tlsCfg == nil {
			tlsCfg = &tls.Config{}
		}
		tlsCfg = tlsCfg.Clone()
		tlsCfg.Certificates = []tls.Certificate{*cert}
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: connectTimeout}, Config: tlsCfg}
	conn, err := dialer.DialContext(cctx, "tcp", d.s.cfg.MQTTAddr)
	if err != nil {
		if ctx.Err() == nil {
			d.failed()
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	cli := paho.NewClient(paho.ClientConfig{
		ClientID:      id,
		Conn:          packets.NewThreadSafeConn(conn),
		PacketTimeout: publishTimeout,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				d.received(pr.Packet.Payload)
				return true, nil
			},
		},
		// paho calls these in goroutines of its own; both must be set.
		OnClientError:      func(error) {},
		OnServerDisconnect: func(*paho.Disconnect) {},
	})
	cp := &paho.Connect{
		ClientID:     id,
		KeepAlive:    60,
		CleanStart:   true,
		UsernameFlag: true,
		Username:     id,
		PasswordFlag: true,
		Password:     []byte(d.cred.Secret),
	}
	if cert != nil { // the certificate is the credential
		cp.PasswordFlag, cp.Password = false, nil
	}
	ca, err := cli.Connect(cctx, cp)
	if err != nil { // Connect has closed conn
		switch {
		case ca != nil && ca.ReasonCode >= 0x80:
			d.refused(fmt.Sprintf("connack_0x%02x", ca.ReasonCode), 1)
		case ctx.Err() == nil:
			d.failed()
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	return cli, nil
}

// idle generates events until the deadline; false when ctx is done.
func (d *device) idle(ctx context.Context, until time.Time) bool {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		d.generate(ctx, now)
		if !now.Before(until) {
			return true
		}
		wake := d.earliest()
		if until.Before(wake) {
			wake = until
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return false
		case c := <-d.cmds:
			d.command(time.Now(), c)
		case <-timer.C:
		}
	}
}

// serve generates and publishes until ctx is done or the connection is lost.
func (d *device) serve(ctx context.Context, cli *paho.Client) {
	d.answered = false
	var retryAt time.Time
	attempt := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		d.generate(ctx, now)
		if !now.Before(retryAt) {
			retryAt = d.flushMQTT(ctx, cli, &attempt)
		}
		wake := d.earliest()
		if len(d.queue) > 0 && !retryAt.IsZero() && retryAt.Before(wake) {
			wake = retryAt
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return
		case <-cli.Done():
			return
		case c := <-d.cmds:
			d.command(time.Now(), c)
		case <-timer.C:
		}
	}
}

// subscribe subscribes to the device's commands topic; a refusal is
// counted ("suback_0x87") and not retried on this connection.
func (d *device) subscribe(ctx context.Context, cli *paho.Client) {
	sctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	sa, err := cli.Subscribe(sctx, &paho.Subscribe{
		Subscriptions: []paho.SubscribeOptions{{Topic: commandsTopic(d.cred.DeviceID), QoS: 1}},
	})
	switch {
	case sa != nil && len(sa.Reasons) > 0 && sa.Reasons[0] >= 0x80:
		d.refused(fmt.Sprintf("suback_0x%02x", sa.Reasons[0]), 1)
		d.s.log.Debug("sim: subscribe refused", "device_id", d.cred.DeviceID, "reason_code", sa.Reasons[0])
	case err != nil && ctx.Err() == nil:
		d.s.log.Debug("sim: subscribe failed", "device_id", d.cred.DeviceID, "err", err)
	}
}

// flushMQTT publishes queued messages in order until the queue is empty or
// a send fails. After a failure it returns when to try again (zero when
// the connection is gone: the next connection resends at once).
func (d *device) flushMQTT(ctx context.Context, cli *paho.Client, attempt *int) (retryAt time.Time) {
	for len(d.queue) > 0 {
		p := d.queue[0]
		d.sent(d.queue[:1])
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		pr, err := cli.Publish(pctx, &paho.Publish{
			QoS:     1,
			Topic:   topicFor(d.cred.DeviceID, p.typ),
			Payload: p.payload,
		})
		cancel()
		switch {
		case err == nil:
			d.answered = true
			d.acked(d.queue[:1], 0)
			d.remove(0, 1)
			*attempt = 0
		case pr != nil && pr.ReasonCode >= 0x80:
			d.answered = true
			reason := fmt.Sprintf("puback_0x%02x", pr.ReasonCode)
			d.refused(reason, 1)
			d.s.log.Debug("sim: event refused", "device_id", d.cred.DeviceID, "type", p.typ, "reason", reason)
			d.remove(0, 1)
		case ctx.Err() != nil:
			return time.Time{}
		default:
			// Lost connection or no PUBACK in time: the server may or may
			// not have it. It stays first in the queue and is resent, same
			// bytes, after a backoff or on the next connection.
			select {
			case <-cli.Done():
				return time.Time{}
			default:
			}
			d.failed()
			*attempt++
			d.s.log.Debug("sim: publish failed", "device_id", d.cred.DeviceID, "type", p.typ, "err", err)
			return time.Now().Add(d.sched.backoff(d.s.cfg.RetryMin, *attempt))
		}
	}
	return time.Time{}
}
