// Package app is the only package that knows every part of Vigil: it builds
// the store, the bus, the gateways and the listeners from a config.Config,
// starts them, and tears them down in reverse order. `vigil serve`, `vigil
// demo` and the end-to-end tests all run through it.
//
// New builds without starting goroutines or binding ports; Start binds and
// serves; Stop(ctx) runs the cleanup stack in reverse; Addr(name) returns a
// bound address (for :0 in tests).
package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"vigil/internal/audit"
	"vigil/internal/auth"
	"vigil/internal/bus"
	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/datakey"
	"vigil/internal/device"
	"vigil/internal/escalation"
	"vigil/internal/event"
	"vigil/internal/gateway/gt06"
	"vigil/internal/gateway/httpgw"
	"vigil/internal/gateway/mqttgw"
	"vigil/internal/netlimit"
	"vigil/internal/notify/console"
	"vigil/internal/notify/sms"
	"vigil/internal/pki"
	"vigil/internal/safety"
	"vigil/internal/store"
	"vigil/internal/store/encrypted"
	"vigil/internal/store/postgres"
	"vigil/internal/store/sqlite"
	"vigil/internal/web"
)

// Deps are the outside inputs of the app.
type Deps struct {
	Clock  clock.Clock
	Logger *slog.Logger
	// Out receives the one-time messages meant for the operator's terminal
	// (the bootstrap token), never the log.
	Out io.Writer
}

// App is a running (or ready to run) Vigil server.
type App struct {
	cfg  config.Config
	deps Deps
	log  *slog.Logger

	reg     *prometheus.Registry
	store   store.Store
	bus     *bus.Bus
	devices *device.Registry
	ca      *pki.CA // the built-in CA: the server certificate
	devCA   *pki.CA // issues and is trusted for device certificates: ca, or tls.device_ca_cert
	tlsCfg  *tls.Config
	tickets *pki.TicketRotator
	// serverCert is the generated server certificate, swapped on renewal.
	serverCert atomic.Pointer[tls.Certificate]
	mqtt       *mqttgw.Gateway
	httpgw     *httpgw.Gateway
	gt06       *gt06.Server // nil unless trackers.gt06_listen is set
	proj       *projector
	pub        *publisher
	falls      *fallConsumer
	safety     *safety.Engine
	esc        *escalation.Engine
	hub        *console.Hub
	links      *escalation.Links
	sms        *sms.Notifier
	safetyCons *safetyConsumer
	api        *web.API
	audit      *audit.Log
	auth       *auth.Service
	mail       *mailQueue // account mails; nil without SMTP

	mu       sync.Mutex
	addrs    map[string]string
	cleanups []cleanup
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	runErr   chan error
}

type cleanup struct {
	name string
	fn   func(ctx context.Context) error
}

func (a *App) onStop(name string, fn func(ctx context.Context) error) {
	a.cleanups = append(a.cleanups, cleanup{name, fn})
}

// New builds the app: data directory, TLS material, store (migrated or
// checked), bus and gateways. Nothing listens until Start.
func New(ctx context.Context, cfg config.Config, deps Deps) (a *App, err error) {
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Out == nil {
		deps.Out = io.Discard
	}
	a = &App{cfg: cfg, deps: deps, log: deps.Logger, addrs: map[string]string{}, runErr: make(chan error, 4)}
	built := a // an error return sets a to nil: stop what was built
	defer func() {
		if err != nil {
			_ = built.Stop(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := a.setupTLS(); err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.store = st
	a.onStop("store", func(context.Context) error { return st.Close() })
	for _, w := range cfg.KeysWarnings() {
		a.log.Warn(w)
	}
	// The embedded JetStream store is encrypted at rest under a key derived
	// from the key-encryption key (an external NATS encrypts its own).
	var jsKey []byte
	if es, ok := st.(*encrypted.Store); ok && cfg.NATS.URL.Reveal() == "" {
		if jsKey, err = es.Keys().DeriveKey(ctx, "system:jetstream", "vigil jetstream store v1", 32); err != nil {
			return nil, fmt.Errorf("jetstream store key (is %s the install's key-encryption key? set keys.kek_file): %w", cfg.KEKPath(), err)
		}
	}

	b, err := bus.Open(ctx, bus.Config{
		URL:       cfg.NATS.URL.Reveal(),
		CredsFile: cfg.NATS.CredsFile,
		Dir:       filepath.Join(cfg.DataDir, "jetstream"),
		Listen:    cfg.NATS.Listen,
		Sync:      cfg.NATS.Sync,
		Replicas:  cfg.NATS.Replicas,
		StoreKey:  jsKey,
	}, a.log.With("component", "bus"))
	if err != nil {
		return nil, fmt.Errorf("open bus: %w", err)
	}
	a.bus = b
	a.onStop("bus", func(context.Context) error { b.Close(); return nil })

	a.devices = device.NewRegistry(st, deps.Clock)
	dec := event.NewDecoder(event.Limits{})
	pub := newPublisher(b, st, a.log.With("component", "publisher"), a.reg)
	a.pub = pub
	a.mqtt, err = mqttgw.New(mqttgw.Config{
		Listen:         cfg.MQTT.Listen,
		MaxPacketBytes: cfg.MQTT.MaxPacketBytes,
		MaxConnections: int64(cfg.MQTT.MaxConnections),
		ReceiveMaximum: uint16(cfg.MQTT.ReceiveMaximum),
		ClientCAs:      a.devCA.Pool(),
		ClientCerts:    cfg.MQTT.ClientCerts,
		SharedIdentity: cfg.MQTT.SharedIdentity,
		FloodPerMinute: cfg.MQTT.FloodPerMinute,
	}, a.tlsCfg.Clone(), a.devices, pub, dec, deps.Clock, a.log.With("component", "mqtt"), a.reg)
	if err != nil {
		return nil, err
	}
	if cfg.MQTT.ClientCerts == mqttgw.ClientCertsOptional {
		a.log.Warn("MQTT accepts devices without a client certificate (mqtt.client_certs = optional): their secret alone lets them in; use required (mutual TLS) in production")
	}
	a.httpgw = httpgw.New(httpgw.Config{}, a.devices, pub, dec, deps.Clock, a.log.With("component", "https"), a.reg)
	a.setupTrackers(pub, dec)
	a.proj = newProjector(st, a.log.With("component", "projector"), a.reg)
	if err := a.setupFalls(); err != nil {
		return nil, err
	}
	if err := a.setupEscalation(ctx); err != nil {
		return nil, err
	}
	a.setupSafety()
	if err := a.setupAccess(ctx); err != nil {
		return nil, err
	}
	a.api.SetAuth(a.auth, a.audit, a.store)
	a.wireAlertNotes()
	a.wirePairing()
	a.wireDeviceAdmin()
	a.api.SetDeviceRevoker(a)
	a.mqtt.SetSharedIdentity(a)
	a.mqtt.SetQuarantiner(a)
	return a, nil
}

// OpenStore opens the configured store, migrating first when the config says
// so; otherwise it refuses a schema that is not the binary's.
func OpenStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	st, err := openRawStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Personal fields are sealed under per-person data keys wrapped by the
	// key-encryption key (keys.kek_file, outside the data directory by
	// default): every reader, the server and each CLI command, sees them
	// through the same decorator (docs/privacy.md).
	es, err := encrypted.WrapWithKeyFile(st, cfg.KEKPath(), datakey.Config{CacheSize: cfg.Keys.CacheSize, CacheTTL: cfg.Keys.CacheTTL})
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("data keys: %w", err)
	}
	return es, nil
}

// openRawStore opens the configured store without the encryption
// decorator.
func openRawStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	kind, dsn := cfg.StoreKind()
	if kind != "postgres" {
		// A CLI command (org add, device add) may run before the first serve.
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
	}
	switch kind {
	case "postgres":
		st, err := postgres.Open(ctx, dsn, postgres.Options{AutoMigrate: cfg.AutoMigrate})
		if err != nil {
			return nil, err // already says "open postgres store"
		}
		return st, nil
	default:
		if dsn == "" {
			dsn = filepath.Join(cfg.DataDir, "vigil.db")
		}
		st, err := sqlite.Open(ctx, dsn, sqlite.Options{AutoMigrate: cfg.AutoMigrate})
		if err != nil {
			return nil, err // already says "open sqlite store"
		}
		return st, nil
	}
}

func (a *App) setupTLS() error {
	now := a.deps.Clock.Now()
	var cert tls.Certificate
	tlsDir := filepath.Join(a.cfg.DataDir, "tls")
	ca, err := pki.EnsureCA(tlsDir, now)
	if err != nil {
		return fmt.Errorf("set up CA: %w", err)
	}
	a.ca, a.devCA = ca, ca
	if a.cfg.TLS.DeviceCACert != "" {
		// Device certificates come from the organisation's own PKI: only
		// its intermediate issues and is trusted for them.
		if a.devCA, err = pki.LoadCA(a.cfg.TLS.DeviceCACert, a.cfg.TLS.DeviceCAKey, now); err != nil {
			return err
		}
	}
	if a.cfg.TLS.CertFile != "" {
		cert, err = pki.LoadKeyPair(a.cfg.TLS.CertFile, a.cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
	} else {
		cert, err = ca.EnsureServerCert(tlsDir, a.cfg.TLS.Hosts, now)
		if err != nil {
			return fmt.Errorf("set up server certificate: %w", err)
		}
	}
	a.tlsCfg = pki.ServerConfig(cert)
	if a.cfg.TLS.CertFile == "" {
		// The generated certificate is renewed while the server runs
		// (renewServerCert); every listener's config copy reads it here.
		a.serverCert.Store(&cert)
		a.tlsCfg.Certificates = nil
		a.tlsCfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return a.serverCert.Load(), nil
		}
	}
	a.tickets = pki.NewTicketRotator(a.tlsCfg)
	return nil
}

// renewServerCert reissues the generated server certificate when it nears
// expiry (pki reissues within 30 days of it); a server that runs for years
// without restart never serves an expired certificate.
func (a *App) renewServerCert() {
	if a.cfg.TLS.CertFile != "" {
		return
	}
	cert, err := a.ca.EnsureServerCert(filepath.Join(a.cfg.DataDir, "tls"), a.cfg.TLS.Hosts, a.deps.Clock.Now())
	if err != nil {
		a.log.Error("renew server certificate", "err", err)
		return
	}
	if old := a.serverCert.Load(); old == nil || !bytes.Equal(old.Certificate[0], cert.Certificate[0]) {
		a.serverCert.Store(&cert)
		a.log.Info("server certificate renewed")
	}
}

// maxConnsPerSource caps open HTTPS/admin connections per remote IP.
const maxConnsPerSource = 512

// Start binds every listener and starts the pipeline.
func (a *App) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	// Registered first, so it runs last: listeners stop before the
	// pipeline they feed.
	a.onStop("pipeline", func(context.Context) error { cancel(); a.wg.Wait(); return nil })

	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		a.tickets.Run(ctx, a.deps.Clock.Now, t.C)
	}()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTicker(6 * time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.renewServerCert()
			}
		}
	}()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.pub.run(ctx)
	}()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		// A bus message holds up to 256 events (typically a few): 128
		// messages bound one store transaction to 32k events, about a
		// second of SQLite work, far inside the 30 s ack wait.
		err := a.bus.Consume(ctx, bus.ConsumeConfig{Durable: "projector", MaxBatch: 512}, a.proj.handle)
		if err != nil {
			a.log.Error("projector stopped", "err", err)
			a.runErr <- err
		}
	}()

	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := a.bus.Consume(ctx, bus.ConsumeConfig{Durable: "falls", Filter: bus.MotionFilter, MaxBatch: 64, Linger: 5 * time.Millisecond}, a.falls.handle)
		if err != nil {
			a.log.Error("fall detection stopped", "err", err)
			a.runErr <- err
		}
	}()

	if a.mail != nil {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.mail.run(ctx)
		}()
	}
	a.startRetention(ctx)
	a.startBackups(ctx)
	if err := a.startFirmware(ctx); err != nil {
		return err
	}
	if err := a.startEscalation(ctx); err != nil {
		return err
	}
	if err := a.startSafety(ctx); err != nil {
		return err
	}

	since, err := a.loadRevocations(ctx)
	if err != nil {
		return err
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTicker(revocationPoll)
		defer t.Stop()
		a.watchRevocations(ctx, since, t.C)
	}()
	if err := a.mqtt.Start(); err != nil {
		return err
	}
	a.setAddr("mqtt", a.mqtt.Addr())
	a.onStop("mqtt", func(context.Context) error { return a.mqtt.Close() })
	if err := a.startTrackers(); err != nil {
		return err
	}

	if err := a.serveHTTP("https", a.cfg.HTTPS.Listen, a.publicHandler()); err != nil {
		return err
	}
	if err := a.serveHTTP("admin", a.cfg.Admin.Listen, a.adminHandler()); err != nil {
		return err
	}
	if a.cfg.API.Listen != "" {
		if err := a.serveHTTP("api", a.cfg.API.Listen, a.harden(a.api.Handler())); err != nil {
			return err
		}
		// Runs before the listener's shutdown, which would otherwise wait
		// for the feeds' endless responses.
		a.onStop("console-feed", func(context.Context) error { a.hub.Close(); return nil })
	}
	return nil
}

func (a *App) serveHTTP(name, addr string, h http.Handler) error {
	network := "tcp"
	if len(addr) > 0 && (addr[0] == '/' || len(addr) > 5 && addr[:5] == "unix:") {
		network = "unix"
		if addr[0] != '/' {
			addr = addr[5:]
		}
		_ = os.Remove(addr)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return fmt.Errorf("listen %s on %s: %w", name, addr, err)
	}
	a.setAddr(name, ln.Addr().String())
	if network == "tcp" {
		// http.Server sets its own deadlines per request; no first deadline.
		ln = netlimit.Listener(ln, maxConnsPerSource, 0)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         a.tlsCfg.Clone(), // http2 setup writes to its config: one each
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.With("component", name).Handler(), slog.LevelDebug),
	}
	if name == "https" {
		// Certificate renewal (POST /api/v1/enrol/renew) authenticates a
		// device by its current certificate: request one, never require
		// or verify it here (the renewal handler does); advertising only
		// Vigil's CA keeps browsers from prompting for a certificate.
		srv.TLSConfig.ClientAuth = tls.RequestClientCert
		srv.TLSConfig.ClientCAs = a.devCA.Pool()
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("listener stopped", "listener", name, "err", err)
			a.runErr <- err
		}
	}()
	a.onStop(name, func(ctx context.Context) error { return srv.Shutdown(ctx) })
	return nil
}

func (a *App) setAddr(name, addr string) {
	a.mu.Lock()
	a.addrs[name] = addr
	a.mu.Unlock()
}

// Addr returns the bound address of a listener: "mqtt", "https" or "admin".
func (a *App) Addr(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addrs[name]
}

// Err delivers the first fatal error of a running component.
func (a *App) Err() <-chan error { return a.runErr }

// Stop tears everything down in reverse order of construction.
func (a *App) Stop(ctx context.Context) error {
	var errs []error
	for i := len(a.cleanups) - 1; i >= 0; i-- {
		c := a.cleanups[i]
		if err := c.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", c.name, err))
		}
	}
	a.cleanups = nil
	return errors.Join(errs...)
}

// Store returns the store (CLI subcommands and tests).
func (a *App) Store() store.Store { return a.store }

// Devices returns the device registry.
func (a *App) Devices() *device.Registry { return a.devices }

// CACertPEM is the CA certificate clients must trust.
func (a *App) CACertPEM() []byte { return a.ca.CertPEM() }

// MQTTHookIDs lists the broker hooks in use.
func (a *App) MQTTHookIDs() []string { return a.mqtt.HookIDs() }

// Metrics returns the app's Prometheus registry.
func (a *App) Metrics() *prometheus.Registry { return a.reg }
