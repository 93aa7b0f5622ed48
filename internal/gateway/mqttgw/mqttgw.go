// Package mqttgw is the device MQTT gateway: an embedded MQTT 3.1.1/5 broker
// (mochi-mqtt) on TLS that authenticates each device, confines it to its own
// topics, decodes and validates every payload into an event.Event, hands it
// to a durable Publisher and only then lets the broker send PUBACK.
//
// Ingest goes through the publish hook, never through a subscriber: a
// subscriber can be dropped under load, the hook blocks the device's own
// connection until the event is durable. Device messages are never fanned
// out to other MQTT clients and never retained.
//
// Deny by default: a connection is refused unless OnConnect authenticated
// it; a topic is refused unless it is one of the device's own (see allowed).
// Device certificates (security requirements 5 and 9): with a client CA
// configured, the TLS layer asks every client for a certificate and checks
// it itself in VerifyConnection (chain to the CA, validity on the injected
// clock, the clientAuth EKU, a urn:vigil:device: name), so that every
// refusal is counted before mochi reads a byte. With ClientCerts
// "required", a client without one fails the handshake too. A device that
// presents a certificate is the device the certificate names: its client
// id must equal it, and the certificate's fingerprint must be the one
// stored for the device at enrolment (CertAuthenticator).
//
// It must not import store, safety, alert or bus; its dependencies are the
// small interfaces below, declared here and wired by internal/app.
package mqttgw

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/netlimit"
	"vigil/internal/pki"
)

// Topic layout. {id} is the device id.
const (
	topicRoot     = "v1/devices/"
	suffixEvents  = "/events"
	suffixMotion  = "/motion"
	suffixCommand = "/commands"
)

// EventsTopic, MotionTopic and CommandsTopic return a device's topics.
func EventsTopic(deviceID string) string   { return topicRoot + deviceID + suffixEvents }
func MotionTopic(deviceID string) string   { return topicRoot + deviceID + suffixMotion }
func CommandsTopic(deviceID string) string { return topicRoot + deviceID + suffixCommand }

// Authenticator checks a device's credentials and returns its organisation.
// ok is false for an unknown device, a wrong secret or a disabled device
// (the client is not told which); err is for a failure to check at all.
type Authenticator interface {
	AuthenticateDevice(ctx context.Context, deviceID, secret string) (orgID string, ok bool, err error)
}

// CertAuthenticator checks a device that presented a verified certificate:
// ok is false for an unknown or disabled device, or when fingerprint (hex
// SHA-256 of the certificate) is not the one stored for it. An
// Authenticator that also implements it is used for certificates.
type CertAuthenticator interface {
	AuthenticateDeviceCert(ctx context.Context, deviceID, fingerprint string) (orgID string, ok bool, err error)
}

// Client certificate modes.
const (
	ClientCertsOptional = "optional" // a client may present a device certificate; one without uses its secret
	ClientCertsRequired = "required" // mutual TLS: no valid device certificate, no connection
)

// Publisher stores an event durably; it returns nil only once the event
// will survive a crash.
type Publisher interface {
	PublishEvent(ctx context.Context, ev *event.Event) error
}

// Config tunes the gateway. Zero values take the defaults.
type Config struct {
	Listen         string        // default ":8883"
	MaxPacketBytes int           // default 256 KiB + MQTT overhead
	MaxConnections int64         // default 100000
	MaxPerSource   int           // connections per remote IP; default 1000
	ReceiveMaximum uint16        // QoS1 in-flight window per client; default 256
	PublishTimeout time.Duration // how long a durable publish may take; default 10s
	AuthTimeout    time.Duration // default 5s
	ConnectTimeout time.Duration // TLS handshake + CONNECT; default 10s
	MaxKeepalive   uint16        // seconds; 0 or more is clamped to it; default 300
	// ClientCAs, when set, are the roots device certificates must chain
	// to (Vigil's CA); nil asks clients for no certificate at all.
	ClientCAs *x509.CertPool
	// ClientCerts is ClientCertsOptional (default) or ClientCertsRequired;
	// required needs ClientCAs.
	ClientCerts string
	// SharedIdentity is the policy for an identity used from several
	// places: SharedTakeover (default) or SharedRefuse.
	SharedIdentity string
	// FloodPerMinute is how many messages a minute flag a device as
	// flooding (quarantine); 0 takes the default (6000), < 0 turns the
	// check off (benchmarks).
	FloodPerMinute int
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = ":8883"
	}
	if c.MaxPacketBytes <= 0 {
		c.MaxPacketBytes = 256<<10 + 1024
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 100000
	}
	if c.MaxPerSource <= 0 {
		c.MaxPerSource = 1000
	}
	if c.ReceiveMaximum == 0 {
		c.ReceiveMaximum = 256
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = 5 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.MaxKeepalive == 0 {
		c.MaxKeepalive = 300
	}
	if c.ClientCerts == "" {
		c.ClientCerts = ClientCertsOptional
	}
	if c.SharedIdentity == "" {
		c.SharedIdentity = SharedTakeover
	}
	if c.FloodPerMinute == 0 {
		c.FloodPerMinute = defaultFloodPM
	}
	return c
}

type metrics struct {
	connects  *prometheus.CounterVec
	accepted  *prometheus.CounterVec
	refused   *prometheus.CounterVec
	tlsRefuse *prometheus.CounterVec
	connected prometheus.Gauge
	latency   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_mqtt_connects_total", Help: "MQTT connection attempts by result.",
		}, []string{"result"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_mqtt_messages_accepted_total", Help: "Device messages made durable, by event type.",
		}, []string{"type"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_mqtt_messages_refused_total", Help: "Device messages or subscriptions refused, by reason.",
		}, []string{"reason"}),
		tlsRefuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_mqtt_tls_client_refused_total",
			Help: "TLS handshakes refused for the client certificate, by reason (no_certificate, unknown_ca, expired, no_client_auth, not_device, revoked, untrusted).",
		}, []string{"reason"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_mqtt_clients_connected", Help: "Devices connected over MQTT.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_mqtt_durable_publish_seconds",
			Help:    "Time from receiving a PUBLISH to the event being durable (before PUBACK).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.connects, m.accepted, m.refused, m.tlsRefuse, m.connected, m.latency)
	}
	return m
}

// Gateway is the MQTT device gateway.
type Gateway struct {
	cfg     Config
	tls     *tls.Config
	auth    Authenticator
	certs   CertAuthenticator // nil without ClientCAs
	pub     Publisher
	dec     *event.Decoder
	clk     clock.Clock
	log     *slog.Logger
	m       *metrics
	srv     *mqtt.Server
	ln      net.Listener
	limited *netlimit.Limited
	mu      sync.Mutex
	devices map[string]string // client id (= device id) → org id, set on authenticated CONNECT
	revoked map[string]bool   // certificate fingerprints refused in the handshake (Revoke)
	ident   *identityWatch
	shared  SharedIdentity // told of shared identities; nil: log and metric only
	misfit  *misbehaviourWatch
	quar    Quarantiner // told of misbehaving devices; nil: log and metric only
	nconn   int         // authenticated connects, to prune ident now and then
	hookIDs []string
}

// SetQuarantiner sets who is told when a device misbehaves (call before
// Start).
func (g *Gateway) SetQuarantiner(q Quarantiner) { g.quar = q }

// Release forgets a device's misbehaviour after its quarantine was lifted,
// so that it is watched afresh.
func (g *Gateway) Release(deviceID string) {
	g.misfit.mu.Lock()
	delete(g.misfit.devices, deviceID)
	g.misfit.mu.Unlock()
}

// misbehaved reports a device crossing a misbehaviour line, once.
func (g *Gateway) misbehaved(id, reason string, now time.Time) {
	if reason == "" {
		return
	}
	g.mu.Lock()
	orgID := g.devices[id]
	g.mu.Unlock()
	g.m.refused.WithLabelValues("quarantine_" + reason).Inc()
	g.log.Warn("mqtt device misbehaving: quarantined", "device_id", id, "reason", reason)
	if g.quar != nil {
		g.quar.QuarantineDevice(id, orgID, reason, now)
	}
}

// SetSharedIdentity sets who is told when a device identity is used from
// several places (call before Start).
func (g *Gateway) SetSharedIdentity(s SharedIdentity) { g.shared = s }

// New builds a gateway. tlsCfg is required: there is no plaintext listener.
func New(cfg Config, tlsCfg *tls.Config, auth Authenticator, pub Publisher, dec *event.Decoder, clk clock.Clock, log *slog.Logger, reg prometheus.Registerer) (*Gateway, error) {
	if tlsCfg == nil {
		return nil, errors.New("mqttgw: TLS configuration required")
	}
	cfg = cfg.withDefaults()
	g := &Gateway{
		cfg: cfg, tls: tlsCfg, auth: auth, pub: pub, dec: dec, clk: clk, log: log,
		m:       newMetrics(reg),
		devices: make(map[string]string),
		revoked: make(map[string]bool),
		ident:   newIdentityWatch(),
		misfit:  newMisbehaviourWatch(cfg.FloodPerMinute),
	}
	switch {
	case cfg.ClientCerts != ClientCertsOptional && cfg.ClientCerts != ClientCertsRequired:
		return nil, fmt.Errorf("mqttgw: client certificates %q: want %s or %s", cfg.ClientCerts, ClientCertsOptional, ClientCertsRequired)
	case cfg.ClientCerts == ClientCertsRequired && cfg.ClientCAs == nil:
		return nil, errors.New("mqttgw: client certificates required but no client CA configured")
	case cfg.SharedIdentity != SharedTakeover && cfg.SharedIdentity != SharedRefuse:
		return nil, fmt.Errorf("mqttgw: shared identity policy %q: want %s or %s", cfg.SharedIdentity, SharedTakeover, SharedRefuse)
	}
	if cfg.ClientCAs != nil {
		ca, ok := auth.(CertAuthenticator)
		if !ok {
			return nil, errors.New("mqttgw: a client CA needs an authenticator that checks device certificates")
		}
		g.certs = ca
		g.tls = tlsCfg.Clone()
		// Verification is ours (VerifyConnection), so every refusal is
		// counted and the clock is the injected one; crypto/tls only
		// asks for the certificate.
		g.tls.ClientAuth = tls.RequestClientCert
		g.tls.ClientCAs = cfg.ClientCAs // advertised in CertificateRequest
		g.tls.VerifyConnection = g.verifyClient
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.MaxPacketBytes)
	caps.MaximumClients = cfg.MaxConnections
	caps.ReceiveMaximum = cfg.ReceiveMaximum
	// An acknowledgement carries no copy of the PUBLISH's properties
	// (mochi echoes them by default; MQTT 5 gives them no meaning there).
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	caps.MaximumInflight = cfg.ReceiveMaximum
	caps.MaximumQos = 1      // at-least-once plus our idempotency; a QoS 2 PUBLISH is refused (OnPacketRead)
	caps.RetainAvailable = 0 // devices never retain
	caps.MaximumSessionExpiryInterval = 24 * 60 * 60
	caps.MaximumMessageExpiryInterval = 24 * 60 * 60
	// Wildcard and shared subscriptions stay advertised so that a device
	// trying one gets the ACL's 0x87, the same answer as any foreign topic.
	caps.MinimumProtocolVersion = 4 // 3.1.1 and 5; 3.1 is refused
	g.srv = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true, // server → device commands
		// The broker's own log is for its errors only: every refusal that
		// matters is logged and counted by the hook, once.
		Logger: slog.New(levelFloor{log.Handler(), slog.LevelError}).With("component", "mqtt-broker"),
	})
	h := &hook{g: g}
	if err := g.srv.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("mqttgw: add hook: %w", err)
	}
	g.hookIDs = append(g.hookIDs, h.ID())
	return g, nil
}

// verifyClient runs in every TLS handshake (resumed ones too) when a client
// CA is configured. An error fails the handshake before mochi reads a byte.
func (g *Gateway) verifyClient(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		if g.cfg.ClientCerts == ClientCertsRequired {
			return g.refuseTLS("no_certificate", errors.New("mqttgw: client certificate required"))
		}
		return nil
	}
	if err := pki.VerifyClient(cs.PeerCertificates, g.cfg.ClientCAs, g.clk.Now()); err != nil {
		return g.refuseTLS(tlsReason(err), err)
	}
	if _, err := pki.DeviceID(cs.PeerCertificates[0]); err != nil {
		return g.refuseTLS("not_device", err)
	}
	g.mu.Lock()
	revoked := g.revoked[pki.Fingerprint(cs.PeerCertificates[0].Raw)]
	g.mu.Unlock()
	if revoked {
		return g.refuseTLS("revoked", errors.New("mqttgw: device certificate revoked"))
	}
	return nil
}

// Revoke cuts a device off: its certificate (fingerprint, hex SHA-256;
// "" when it has none) is refused in every later TLS handshake, and its
// live connection, if any, is closed now (MQTT 5 clients get DISCONNECT
// 0x98, administrative action). New CONNECTs are refused by the
// authenticator, which sees the device disabled. It reports whether a
// live connection was closed. Idempotent.
func (g *Gateway) Revoke(deviceID, fingerprint string) bool {
	g.mu.Lock()
	if fingerprint != "" {
		g.revoked[fingerprint] = true
	}
	delete(g.devices, deviceID)
	g.mu.Unlock()
	cl, ok := g.srv.Clients.Get(deviceID)
	if !ok || cl.Net.Inline || cl.Closed() {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		// It also stops the client; the answer is the reason code itself.
		_ = g.srv.DisconnectClient(cl, packets.ErrAdministrativeAction)
	}
	cl.Stop(errRevoked) // 3.1.1 has no server DISCONNECT: the connection just closes
	g.m.refused.WithLabelValues("revoked").Inc()
	g.log.Warn("mqtt device revoked: connection closed", "device_id", deviceID)
	return true
}

var errRevoked = errors.New("mqttgw: device revoked")

func (g *Gateway) refuseTLS(reason string, err error) error {
	g.m.tlsRefuse.WithLabelValues(reason).Inc()
	g.log.Warn("mqtt tls client certificate refused", "reason", reason, "err", err)
	return err
}

// tlsReason is the metric label for a refused certificate.
func tlsReason(err error) string {
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &ua):
		return "unknown_ca"
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "expired"
	case errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage:
		return "no_client_auth"
	case strings.Contains(err.Error(), "extended key usage"):
		return "no_client_auth"
	default:
		return "untrusted"
	}
}

// peerCert is the verified device certificate of a connection, or nil.
func peerCert(cl *mqtt.Client) *x509.Certificate {
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return nil
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		return certs[0]
	}
	return nil
}

// HookIDs lists the broker hooks in use (a test proves no permissive one).
func (g *Gateway) HookIDs() []string {
	return append([]string(nil), g.hookIDs...)
}

// Start binds the listener and serves in the broker's goroutines until Close.
// Connections are capped per source IP and must finish the TLS handshake
// and CONNECT within ConnectTimeout, before mochi sees them.
func (g *Gateway) Start() error {
	raw, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("mqttgw: listen %s: %w", g.cfg.Listen, err)
	}
	g.ln = raw
	g.limited = netlimit.Listener(raw, g.cfg.MaxPerSource, g.cfg.ConnectTimeout)
	tlsLn := tls.NewListener(g.limited, g.tls)
	if err := g.srv.AddListener(listeners.NewNet("devices-tls", tlsLn)); err != nil {
		raw.Close()
		return fmt.Errorf("mqttgw: add listener: %w", err)
	}
	if err := g.srv.Serve(); err != nil {
		return fmt.Errorf("mqttgw: serve: %w", err)
	}
	return nil
}

// Addr is the bound listener address (useful with port 0).
func (g *Gateway) Addr() string {
	if g.ln == nil {
		return ""
	}
	return g.ln.Addr().String()
}

// Close disconnects every client and stops the listener. Connections are
// shut first and the broker stopped only once none is still being set up
// (mochi's Close races with a connection it is accepting).
func (g *Gateway) Close() error {
	if g.limited != nil {
		g.limited.Drain(5 * time.Second)
	}
	if err := CloseServer(g.srv); err != nil {
		return fmt.Errorf("mqttgw: close: %w", err)
	}
	return nil
}

// CloseServer closes a mochi broker without its shutdown deadlock
// (mochi-mqtt/server#488, fixes unmerged in v2.7.9): Server.Close closes
// each listener's clients through Clients.GetByListener, which takes the
// clients' read lock twice; a client connecting or leaving in between
// (a writer) deadlocks the broker for good. Here the listeners are closed
// first with a closer that stops their clients from one snapshot (one
// read lock) and waits for their goroutines; Server.Close then finds the
// listeners closed and no longer walks the clients.
func CloseServer(srv *mqtt.Server) error {
	srv.Listeners.CloseAll(func(listener string) {
		for _, cl := range srv.Clients.GetAll() {
			if cl.Net.Listener == listener && !cl.Closed() {
				cl.Stop(errServerClosing)
			}
		}
	})
	return srv.Close()
}

var errServerClosing = errors.New("mqttgw: server closing")

// SendCommand publishes payload on a device's command topic (QoS 1).
func (g *Gateway) SendCommand(deviceID string, payload []byte) error {
	if !validID(deviceID) {
		return errors.New("mqttgw: invalid device id")
	}
	if err := g.srv.Publish(CommandsTopic(deviceID), payload, false, 1); err != nil {
		return fmt.Errorf("mqttgw: send command: %w", err)
	}
	return nil
}

// validID accepts the ids Vigil issues: lowercase letters, digits, - and _,
// 1–64 long. Anything else (wildcards, '/', NUL, invalid UTF-8) is refused.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 || !utf8.ValidString(id) {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// allowed is the whole ACL: a device may publish to its own events and motion
// topics and subscribe to its own commands topic. Nothing else, ever.
func allowed(deviceID, topic string, write bool) bool {
	if write {
		return topic == EventsTopic(deviceID) || topic == MotionTopic(deviceID)
	}
	return topic == CommandsTopic(deviceID)
}

type hook struct {
	mqtt.HookBase
	g *Gateway
}

func (h *hook) ID() string { return "vigil-device-gateway" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish,
		mqtt.OnDisconnect, mqtt.OnSubscribe, mqtt.OnPacketEncode, mqtt.OnPacketRead:
		return true
	}
	return false
}

// OnPacketRead refuses two PUBLISH protocol errors that mochi would
// otherwise answer wrongly:
//   - a topic name holding a wildcard or starting with '$', which mochi
//     drops without any answer, leaving the device waiting for a PUBACK:
//     DISCONNECT 0x90 Topic Name invalid;
//   - QoS 2, above the Maximum QoS 1 the CONNACK announced, which mochi
//     would downgrade and answer with a PUBACK where the device's QoS 2
//     flow waits for a PUBREC: DISCONNECT 0x9B QoS not supported.
//
// MQTT 3.1.1 has no DISCONNECT from the server: the connection closes.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return pk, nil
	}
	if pk.FixedHeader.Qos > 1 {
		h.g.m.refused.WithLabelValues("qos_not_supported").Inc()
		h.g.log.Warn("mqtt publish at QoS 2; disconnecting", "device_id", cl.ID)
		_ = h.g.srv.DisconnectClient(cl, packets.ErrQosNotSupported)
		return pk, packets.ErrRejectPacket // any other error lets mochi process the packet anyway
	}
	t := pk.TopicName
	if strings.ContainsAny(t, "+#") || strings.HasPrefix(t, "$") {
		h.g.m.refused.WithLabelValues("topic_invalid").Inc()
		h.g.log.Warn("mqtt publish to an invalid topic name; disconnecting", "device_id", cl.ID)
		_ = h.g.srv.DisconnectClient(cl, packets.ErrTopicNameInvalid)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnPacketEncode corrects the reason code of a successful PUBACK: mochi
// sends its "granted QoS 1" code (0x01), which MQTT 5 does not define for
// PUBACK; Success is 0x00. (It reaches the wire only when the PUBACK has
// properties, but a strict client may refuse it.)
func (h *hook) OnPacketEncode(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Puback && pk.ReasonCode == packets.CodeGrantedQos1.Code {
		pk.ReasonCode = packets.CodeSuccess.Code
	}
	return pk
}

func (h *hook) refuseConnect(cl *mqtt.Client, code packets.Code, reason string, attrs ...any) error {
	h.g.m.connects.WithLabelValues(reason).Inc()
	h.g.log.Warn("mqtt connect refused", append([]any{"reason", reason, "remote", cl.Net.Remote}, attrs...)...)
	ack := code
	if _, mapped := packets.V5CodesToV3[code]; cl.Properties.ProtocolVersion < 5 && !mapped {
		// 3.1.1 CONNACK codes stop at 0x05; anything else is "not authorized".
		ack = packets.Err3NotAuthorized
	}
	_ = h.g.srv.SendConnack(cl, ack, false, nil)
	return code
}

// OnConnect authenticates. With a device certificate (verified in the TLS
// handshake) the certificate is the identity: the client id must be the
// device it names (the username empty or the same), and the certificate
// must be the device's current one. Without one, the client id must be the
// device id and equal the username, and the password is the device secret.
// Identity is never taken from anything the client says without the
// certificate or the secret proving it.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	g := h.g
	cl.Properties.Props.User = nil // no client-supplied properties carry meaning
	id := cl.ID
	user := string(pk.Connect.Username)
	var cert *x509.Certificate
	if g.certs != nil {
		cert = peerCert(cl)
	}
	if !validID(id) {
		return h.refuseConnect(cl, packets.ErrClientIdentifierNotValid, "client_id_invalid")
	}
	certID := ""
	if cert != nil {
		// Identity is the certificate's, verified in the handshake.
		var err error
		if certID, err = pki.DeviceID(cert); err != nil {
			return h.refuseConnect(cl, packets.ErrNotAuthorized, "not_device_cert")
		}
		if id != certID || (user != "" && user != certID) {
			return h.refuseConnect(cl, packets.ErrClientIdentifierNotValid, "client_id_not_cert", "device_id", certID)
		}
	} else if g.cfg.ClientCerts == ClientCertsRequired {
		// Unreachable: the handshake refused it. Deny anyway.
		return h.refuseConnect(cl, packets.ErrNotAuthorized, "no_certificate")
	} else if user != id {
		return h.refuseConnect(cl, packets.ErrClientIdentifierNotValid, "client_id_mismatch")
	}
	// A Will is published by the broker on the client's behalf, past the
	// ACL: a device could use it to write to another device's commands
	// topic. Devices have no use for one; it is refused.
	if pk.Connect.WillFlag {
		return h.refuseConnect(cl, packets.ErrNotAuthorized, "will_not_allowed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.AuthTimeout)
	defer cancel()
	var orgID string
	var ok bool
	var err error
	if cert != nil {
		orgID, ok, err = g.certs.AuthenticateDeviceCert(ctx, certID, pki.Fingerprint(cert.Raw))
	} else {
		orgID, ok, err = g.auth.AuthenticateDevice(ctx, id, string(pk.Connect.Password))
	}
	if err == nil && !ok {
		return h.refuseConnect(cl, packets.ErrBadUsernameOrPassword, "bad_credentials")
	}
	if err != nil {
		g.log.Error("mqtt device authentication failed", "device_id", id, "err", err)
		return h.refuseConnect(cl, packets.ErrServerUnavailable, "auth_unavailable")
	}
	if refuse := h.sharedIdentity(cl, id, orgID); refuse {
		return h.refuseConnect(cl, packets.ErrNotAuthorized, "identity_shared")
	}
	// A keepalive of 0 (never) or above the cap would let a silent
	// connection live forever: the server sets its own (MQTT 5 tells the
	// client in CONNACK; a 3.1.1 client is simply cut after 1.5x).
	if k := cl.State.Keepalive; k == 0 || k > g.cfg.MaxKeepalive {
		cl.State.Keepalive = g.cfg.MaxKeepalive
		cl.State.ServerKeepalive = true
	}
	g.mu.Lock()
	g.devices[id] = orgID
	g.mu.Unlock()
	g.m.connects.WithLabelValues("ok").Inc()
	return nil
}

// sharedIdentity checks an authenticated connection against the device's
// recent ones (security requirement 6): a shared or cloned identity is
// logged, counted and reported once per quiet period; under SharedRefuse,
// while it is flagged, a connection from another source than the live one
// is refused and the live one stays.
func (h *hook) sharedIdentity(cl *mqtt.Client, id, orgID string) (refuse bool) {
	g := h.g
	ip := sourceIP(cl.Net.Remote)
	live := false
	if old, ok := g.srv.Clients.Get(id); ok && old != cl && !old.Closed() && sourceIP(old.Net.Remote) != ip {
		live = true
	}
	now := g.clk.Now()
	g.mu.Lock()
	g.nconn++
	prune := g.nconn%1024 == 0
	g.mu.Unlock()
	if prune {
		g.ident.prune(now)
		g.misfit.forget(now)
	}
	shared, raise := g.ident.connect(id, ip, now)
	if raise != nil {
		g.m.refused.WithLabelValues("identity_shared").Inc()
		g.log.Warn("mqtt device identity shared", "device_id", id, "sources", raise, "policy", g.cfg.SharedIdentity)
		if g.shared != nil {
			g.shared.DeviceIdentityShared(id, orgID, raise, now)
		}
	}
	return shared && live && g.cfg.SharedIdentity == SharedRefuse
}

// OnConnectAuthenticate admits only clients OnConnect authenticated.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	h.g.mu.Lock()
	_, ok := h.g.devices[cl.ID]
	h.g.mu.Unlock()
	if ok {
		h.g.m.connected.Inc()
	}
	return ok
}

func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.g.mu.Lock()
	_, ok := h.g.devices[cl.ID]
	h.g.mu.Unlock()
	if ok {
		// The device entry stays: a session takeover by the same device
		// may already have replaced this connection.
		h.g.m.connected.Dec()
	}
}

// OnACLCheck is the topic allowlist.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	if allowed(cl.ID, topic, write) {
		return true
	}
	reason := "acl_subscribe"
	if write {
		reason = "acl_publish"
	}
	h.g.m.refused.WithLabelValues(reason).Inc()
	h.g.log.Warn("mqtt topic refused", "device_id", cl.ID, "write", write, "reason", reason)
	now := h.g.clk.Now()
	h.g.misbehaved(cl.ID, h.g.misfit.denied(cl.ID, now), now)
	return false
}

// OnSubscribe refuses a whole subscription when any filter is not the
// device's own commands topic; mochi then answers each filter with 0x87
// (3.1.1: 0x80) because OnACLCheck denies it.
func (h *hook) OnSubscribe(_ *mqtt.Client, pk packets.Packet) packets.Packet { return pk }

// OnPublish decodes, validates and durably publishes a device message before
// mochi may acknowledge it.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	g := h.g
	if cl.Net.Inline {
		return pk, nil
	}
	start := g.clk.Now()
	g.mu.Lock()
	orgID, ok := g.devices[cl.ID]
	g.mu.Unlock()
	if !ok { // cannot happen after OnConnectAuthenticate; deny anyway
		return pk, h.fail(cl, pk, packets.ErrNotAuthorized, "unauthenticated")
	}
	ev, reason, err := decode(g.dec, pk.TopicName, pk.Payload, event.Origin{OrgID: orgID, DeviceID: cl.ID, Source: event.SourceMQTT}, start)
	if err != nil {
		g.log.Warn("mqtt payload refused", "device_id", cl.ID, "reason", reason, "err", err)
		return pk, h.fail(cl, pk, packets.ErrPayloadFormatInvalid, reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	defer cancel()
	if err := g.pub.PublishEvent(ctx, &ev); err != nil {
		// Not durable: never acknowledge. Disconnect so the device keeps
		// the message and sends it again on its next connection.
		g.log.Error("durable publish failed; disconnecting device so it retries", "device_id", cl.ID, "err", err)
		g.m.refused.WithLabelValues("backend_unavailable").Inc()
		_ = g.srv.DisconnectClient(cl, packets.ErrServerBusy)
		return pk, packets.ErrRejectPacket
	}
	g.m.accepted.WithLabelValues(string(ev.Type)).Inc()
	g.m.latency.Observe(g.clk.Now().Sub(start).Seconds())
	g.misbehaved(cl.ID, g.misfit.accepted(cl.ID, &ev, start), start)
	// Acknowledge, but never fan out or retain a device's message.
	return pk, packets.CodeSuccessIgnore
}

// decode validates a device message published on topic. reason is a
// metric label for a refusal.
func decode(dec *event.Decoder, topic string, payload []byte, from event.Origin, now time.Time) (ev event.Event, reason string, err error) {
	ev, err = dec.Decode(payload, from, now)
	if err != nil {
		if errors.Is(err, event.ErrTooLarge) {
			return ev, "payload_too_large", err
		}
		return ev, "invalid_payload", err
	}
	if strings.HasSuffix(topic, suffixMotion) != (ev.Type == event.TypeMotion) {
		return event.Event{}, "wrong_topic_for_type", fmt.Errorf("mqttgw: %s event on topic %s: motion events go to .../motion, all others to .../events", ev.Type, topic)
	}
	return ev, "", nil
}

// fail refuses one message. MQTT 5 gets a PUBACK with the reason code (QoS 1)
// and keeps its connection; 3.1.1 has no negative acknowledgement, so the
// connection is closed rather than acknowledging what was not accepted.
func (h *hook) fail(cl *mqtt.Client, pk packets.Packet, code packets.Code, reason string) error {
	h.g.m.refused.WithLabelValues(reason).Inc()
	if cl.Properties.ProtocolVersion == 5 {
		if pk.FixedHeader.Qos == 0 {
			return packets.ErrRejectPacket
		}
		return code
	}
	_ = h.g.srv.DisconnectClient(cl, code)
	return packets.ErrRejectPacket
}

// levelFloor drops records below min.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(a), h.min}
}

func (h levelFloor) WithGroup(n string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(n), h.min}
}
