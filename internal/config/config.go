// Package config is the one configuration of the vigil subcommands (serve,
// demo, migrate, device, config): the Config struct, its defaults, its
// validation, and the loader that layers
//
//	defaults < TOML file (--config FILE or VIGIL_CONFIG) < VIGIL_* env < flags
//
// Every option has a TOML key ("mqtt.listen"), an environment variable
// derived from it ("VIGIL_MQTT_LISTEN") and a flag ("--mqtt-listen"); the
// table in options.go is the single list of them, and the errors name all
// three. Decoding is strict: an unknown key in the file, a value of the wrong
// type or out of range is an error naming the option.
//
// Secrets (the store URL, which may hold a PostgreSQL password) are of type
// Secret, which prints as "[redacted]" everywhere, and can also be read from
// a file named by the same option with a _FILE suffix (store_file,
// VIGIL_STORE_FILE, --store-file); one trailing newline is trimmed.
//
// Must not import: anything of vigil (config is read by everyone and knows
// no one; see internal/app TestDeps). It never calls os.Getenv: the
// environment comes in as a getenv function, and files are read through
// Loader.ReadFile.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the effective configuration. The zero value is not useful;
// start from Default or Load.
type Config struct {
	// DataDir holds the SQLite database, JetStream data and the TLS CA and
	// certificates. Default "vigil-data", relative to the working directory.
	DataDir string
	// Store is "" (SQLite at <DataDir>/vigil.db), "sqlite:PATH" or a
	// postgres:// / postgresql:// URL. See StoreKind.
	Store Secret
	// AutoMigrate applies pending schema migrations at start-up.
	AutoMigrate bool

	NATS    NATSConfig
	MQTT    MQTTConfig
	HTTPS   HTTPSConfig
	Admin   AdminConfig
	API     APIConfig
	Console ConsoleConfig
	Auth    AuthConfig
	Safety  SafetyConfig
	Notify  NotifyConfig
	TLS     TLSConfig
	Log     LogConfig

	Trackers TrackersConfig

	Firmware FirmwareConfig // config_firmware.go
	Backup   BackupConfig   // config_backup.go
	Keys     KeysConfig     // config_keys.go
}

// NATSConfig is the event bus.
type NATSConfig struct {
	// URL of an external NATS server (comma-separated for several); ""
	// runs an embedded server.
	URL Secret
	// Listen is the embedded server's TCP client listener, e.g.
	// "127.0.0.1:-1" (random port); "" means in-process connections only.
	Listen string
	// Sync is JetStream's fsync policy: "default" (background fsync every
	// 2 minutes: safe against kill -9, not against power failure),
	// "always" (fsync every write before it is acknowledged) or a Go
	// duration such as "1s".
	Sync string
	// CredsFile is a NATS credentials file for an external server.
	CredsFile string
	// Replicas of the event stream: 1 on one machine, 3 on a cluster.
	Replicas int
}

// MQTTConfig is the device-facing MQTT-over-TLS listener.
type MQTTConfig struct {
	Listen         string
	MaxPacketBytes int
	MaxConnections int
	ReceiveMaximum int
	// ClientCerts is "required" (the default: mutual TLS, the handshake
	// fails without a valid device certificate) or "optional" (the
	// explicitly enabled fallback: devices may present a client
	// certificate from Vigil's CA; those without one use their secret).
	ClientCerts string
	// SharedIdentity is what happens when one device identity connects
	// from several places: "takeover" (default: the newest connection
	// wins, a security event is raised) or "refuse" (new connections from
	// another source are refused while the live one stays).
	SharedIdentity string
	// FloodPerMinute is how many messages a minute from one device flag it
	// for quarantine (default 6000; -1 turns the check off, e.g. for
	// benchmarks).
	FloodPerMinute int
}

// HTTPSConfig is the public HTTPS listener (devices and browsers).
type HTTPSConfig struct {
	Listen string
}

// AdminConfig is the admin/metrics listener, loopback-only unless
// AllowPublic is set (security requirement 40).
type AdminConfig struct {
	// Listen is "host:port" or a unix socket ("/path" or "unix:path").
	Listen      string
	AllowPublic bool
}

// ConsoleConfig is the web console's settings.
type ConsoleConfig struct {
	// Tiles is the map tile server's URL template
	// (https://host/{z}/{x}/{y}.png; {s} for subdomains). Empty (the
	// default) draws maps on a plain grid with a scale: positions show,
	// and no third party learns where anyone is.
	Tiles string
	// TilesAttribution is shown on maps with tiles (e.g. "© OpenStreetMap
	// contributors").
	TilesAttribution string
}

// APIConfig is an extra listener for the JSON API (sessions, alerts,
// zones, users), which is always served on the HTTPS listener too. Every
// route needs a signed-in user or an API token either way.
type APIConfig struct {
	Listen string // "" (default): no extra listener
}

// AuthConfig tunes sign-in sessions.
type AuthConfig struct {
	// IdleTimeout ends a session unused this long (default 15 min, the
	// HIPAA automatic logoff); MaxLifetime ends any session (default 12 h).
	IdleTimeout time.Duration
	MaxLifetime time.Duration
	// OIDCIssuer turns on single sign-on with an OpenID Connect identity
	// provider (https URL; needs notify.base_url for the callback).
	// Users sign in with it only once an admin created their account with
	// the same, verified, e-mail address.
	OIDCIssuer       string
	OIDCClientID     string
	OIDCClientSecret Secret
}

// NotifyConfig is how escalation reaches people: links in messages, and
// the channels besides the console feed (each on only when configured).
type NotifyConfig struct {
	// BaseURL is the console's public base URL; every link in a message is
	// built from it and nothing else (never from a request's Host).
	BaseURL string

	SMTPHost     string // "" turns e-mail off
	SMTPPort     int    // 0: 587 for starttls, 465 for implicit
	SMTPTLS      string // starttls (default) or implicit
	SMTPUsername string
	SMTPPassword Secret
	SMTPFrom     string

	SMSAccount string // a Twilio-compatible account SID; "" turns SMS off
	SMSToken   Secret
	SMSFrom    string
	SMSBaseURL string // default https://api.twilio.com

	// WebhookKey signs every webhook (HMAC-SHA256); "" turns webhooks off.
	WebhookKey Secret
	// OutboundAllow lets webhooks and the SMS provider reach these private
	// networks (CIDRs), which are refused by default.
	OutboundAllow []string
	// OutboundCAFile adds a private CA (PEM) that webhook receivers, the SMS
	// provider and the SMTP server may present, besides the system roots.
	OutboundCAFile string
}

// SafetyConfig tunes the safety rules.
type SafetyConfig struct {
	OfflineAfter    time.Duration
	RemindBefore    time.Duration
	SOSCancelWindow time.Duration
	PreAlert        time.Duration
	ManDownPreAlert time.Duration
	NoMotionAfter   time.Duration
	BatteryWarn     int
	BatteryCritical int
}

// TrackersConfig turns on listeners for third-party trackers that cannot
// speak MQTT or TLS. Each is off while its address is empty: such
// trackers prove no secret (docs/trackers.md).
type TrackersConfig struct {
	// GT06Listen is the GT06/Concox TCP listen address (e.g. ":5023").
	GT06Listen string
}

// TLSConfig selects the server certificate. With CertFile and KeyFile
// empty, the server runs its own CA and issues its own certificate for
// localhost, the machine's hostname and Hosts.
type TLSConfig struct {
	CertFile string
	KeyFile  string
	Hosts    []string
	// DeviceCACert and DeviceCAKey name an external CA (an intermediate
	// of the organisation's own PKI) that issues device client
	// certificates and is the only CA trusted for them, instead of the
	// built-in one. Both or neither.
	DeviceCACert string
	DeviceCAKey  string
}

// LogConfig is the process logger.
type LogConfig struct {
	Level  string // debug, info, warn or error
	Format string // text or json
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		DataDir:     "vigil-data",
		AutoMigrate: true,
		NATS:        NATSConfig{Sync: "default", Replicas: 1},
		MQTT: MQTTConfig{
			Listen:         ":8883",
			MaxPacketBytes: 262144,
			MaxConnections: 100000,
			ReceiveMaximum: 256,
			ClientCerts:    "required",
			SharedIdentity: "takeover",
			FloodPerMinute: 6000,
		},
		HTTPS: HTTPSConfig{Listen: ":8443"},
		Admin: AdminConfig{Listen: "127.0.0.1:9090"},
		Auth:  AuthConfig{IdleTimeout: 15 * time.Minute, MaxLifetime: 12 * time.Hour},
		Safety: SafetyConfig{
			OfflineAfter:    15 * time.Minute,
			RemindBefore:    5 * time.Minute,
			SOSCancelWindow: time.Minute,
			PreAlert:        30 * time.Second,
			ManDownPreAlert: 30 * time.Second,
			NoMotionAfter:   2 * time.Minute,
			BatteryWarn:     20,
			BatteryCritical: 10,
		},
		Log:      LogConfig{Level: "info", Format: "text"},
		Firmware: defaultFirmware(),
		Backup:   defaultBackup(),
		Keys:     defaultKeys(),
	}
}

// Store kinds returned by StoreKind.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// StoreKind returns which store to open and its data source: ("sqlite",
// path) or ("postgres", url). The dsn may hold a password: do not log it.
// On a Config that does not validate it returns ("", "").
func (c Config) StoreKind() (kind, dsn string) {
	kind, dsn, err := parseStore(c.Store.Reveal(), c.DataDir)
	if err != nil {
		return "", ""
	}
	return kind, dsn
}

// parseStore never puts the value in its error: it may hold a password.
func parseStore(s, dataDir string) (kind, dsn string, err error) {
	switch {
	case s == "":
		return StoreSQLite, filepath.Join(dataDir, "vigil.db"), nil
	case strings.HasPrefix(s, "sqlite:"):
		p := strings.TrimPrefix(s, "sqlite:")
		if p == "" {
			return "", "", errors.New("sqlite: needs a path, as in sqlite:/var/lib/vigil/vigil.db")
		}
		return StoreSQLite, p, nil
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return "", "", errors.New("not a valid postgres:// URL (value not shown: it may hold a password)")
		}
		return StorePostgres, s, nil
	default:
		scheme, _, ok := strings.Cut(s, ":")
		if !ok || strings.ContainsAny(scheme, "/@") {
			scheme = ""
		}
		return "", "", fmt.Errorf("unsupported store %q: want empty (SQLite in the data dir), sqlite:PATH or postgres://…", scheme+":…")
	}
}

// Validate checks every option and returns all problems, each naming its
// option.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", optionNames(key), fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if _, _, err := parseStore(c.Store.Reveal(), c.DataDir); err != nil {
		bad("store", "%v", err)
	}
	if c.NATS.URL.Reveal() != "" {
		for _, u := range strings.Split(c.NATS.URL.Reveal(), ",") {
			if err := checkNATSURL(strings.TrimSpace(u)); err != nil {
				bad("nats.url", "%v", err)
			}
		}
	}
	if c.NATS.Listen != "" {
		if err := checkListen(c.NATS.Listen, true); err != nil {
			bad("nats.listen", "%v", err)
		}
	}
	switch s := c.NATS.Sync; s {
	case "default", "always":
	default:
		if d, err := time.ParseDuration(s); err != nil || d <= 0 {
			bad("nats.sync", "%q: want default, always or a positive Go duration such as 1s", s)
		}
	}
	switch {
	case c.NATS.Replicas < 1 || c.NATS.Replicas > 5:
		bad("nats.replicas", "%d: want 1 to 5", c.NATS.Replicas)
	case c.NATS.Replicas != 1 && c.NATS.URL.Reveal() == "":
		bad("nats.replicas", "%d: the embedded server is a single node; replicas > 1 need nats.url pointing at a cluster", c.NATS.Replicas)
	}
	if err := checkListen(c.MQTT.Listen, false); err != nil {
		bad("mqtt.listen", "%v", err)
	}
	if c.Trackers.GT06Listen != "" {
		if err := checkListen(c.Trackers.GT06Listen, false); err != nil {
			bad("trackers.gt06_listen", "%v", err)
		}
	}
	if n := c.MQTT.MaxPacketBytes; n < 1024 || n > 268435455 {
		bad("mqtt.max_packet_bytes", "%d: want 1024 to 268435455 (the MQTT maximum)", n)
	}
	if n := c.MQTT.MaxConnections; n < 1 {
		bad("mqtt.max_connections", "%d: want at least 1", n)
	}
	if n := c.MQTT.ReceiveMaximum; n < 1 || n > 65535 {
		bad("mqtt.receive_maximum", "%d: want 1 to 65535", n)
	}
	if v := c.MQTT.ClientCerts; v != "optional" && v != "required" {
		bad("mqtt.client_certs", "%q: want optional or required", v)
	}
	if v := c.MQTT.FloodPerMinute; v != -1 && v < 60 {
		bad("mqtt.flood_per_minute", "%d: want at least 60, or -1 for off", v)
	}
	if v := c.MQTT.SharedIdentity; v != "takeover" && v != "refuse" {
		bad("mqtt.shared_identity", "%q: want takeover or refuse", v)
	}
	if err := checkListen(c.HTTPS.Listen, false); err != nil {
		bad("https.listen", "%v", err)
	}
	switch {
	case isUnixSocket(c.Admin.Listen):
	case c.Admin.Listen == "":
		bad("admin.listen", "must not be empty")
	default:
		if err := checkListen(c.Admin.Listen, false); err != nil {
			bad("admin.listen", "%v", err)
		} else if !isLoopback(c.Admin.Listen) && !c.Admin.AllowPublic {
			bad("admin.listen", "%q is not a loopback address or unix socket, so the admin API would be reachable from the network; "+
				"use 127.0.0.1:PORT or a unix socket, or set admin.allow_public = true (--admin-allow-public, VIGIL_ADMIN_ALLOW_PUBLIC=true) to expose it deliberately",
				c.Admin.Listen)
		}
	}
	if c.API.Listen != "" {
		if err := checkListen(c.API.Listen, false); err != nil {
			bad("api.listen", "%v", err)
		}
	}
	if c.Auth.IdleTimeout < time.Minute || c.Auth.IdleTimeout > 12*time.Hour {
		bad("auth.idle_timeout", "want 1m to 12h, got %v", c.Auth.IdleTimeout)
	}
	if c.Auth.MaxLifetime < c.Auth.IdleTimeout || c.Auth.MaxLifetime > 7*24*time.Hour {
		bad("auth.max_lifetime", "want from auth.idle_timeout to 168h, got %v", c.Auth.MaxLifetime)
	}
	if t := c.Console.Tiles; t != "" {
		if u, err := url.Parse(strings.NewReplacer("{s}", "a", "{z}", "0", "{x}", "0", "{y}", "0", "{r}", "").Replace(t)); err != nil ||
			u.Scheme != "https" || u.Host == "" || u.User != nil || strings.ContainsAny(u.Host, " ;,'*") {
			bad("console.tiles", "want an https URL template such as https://tile.example.org/{z}/{x}/{y}.png")
		}
	}
	if c.Auth.OIDCIssuer != "" {
		if u, err := url.Parse(c.Auth.OIDCIssuer); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			bad("auth.oidc_issuer", "want the identity provider's https URL")
		}
		if c.Auth.OIDCClientID == "" {
			bad("auth.oidc_client_id", "required with auth.oidc_issuer")
		}
		if c.Notify.BaseURL == "" {
			bad("notify.base_url", "required with auth.oidc_issuer: the callback URL is built from it")
		}
	}
	c.Notify.validate(bad)
	sf := c.Safety
	if sf.OfflineAfter < time.Minute || sf.OfflineAfter > 24*time.Hour {
		bad("safety.offline_after", "%s: want 1m to 24h", sf.OfflineAfter)
	}
	if sf.RemindBefore < 0 || sf.RemindBefore > time.Hour {
		bad("safety.remind_before", "%s: want 0 to 1h", sf.RemindBefore)
	}
	if sf.SOSCancelWindow < 0 || sf.SOSCancelWindow > 10*time.Minute {
		bad("safety.sos_cancel_window", "%s: want 0 to 10m", sf.SOSCancelWindow)
	}
	if sf.PreAlert < 5*time.Second || sf.PreAlert > 5*time.Minute {
		bad("safety.pre_alert", "%s: want 5s to 5m", sf.PreAlert)
	}
	if sf.ManDownPreAlert < 5*time.Second || sf.ManDownPreAlert > 5*time.Minute {
		bad("safety.man_down_pre_alert", "%s: want 5s to 5m", sf.ManDownPreAlert)
	}
	if sf.NoMotionAfter != 0 && (sf.NoMotionAfter < 30*time.Second || sf.NoMotionAfter > time.Hour) {
		bad("safety.no_motion_after", "%s: want 30s to 1h, or 0 to turn no-motion detection off", sf.NoMotionAfter)
	}
	if sf.BatteryCritical < 1 || sf.BatteryWarn > 99 || sf.BatteryCritical > sf.BatteryWarn {
		bad("safety.battery_warn", "warn %d%% and critical %d%%: want 1 <= critical <= warn <= 99", sf.BatteryWarn, sf.BatteryCritical)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls.cert_file", "tls.cert_file (--tls-cert) and tls.key_file (--tls-key) must be set together, or both left empty for a self-managed CA")
	}
	if (c.TLS.DeviceCACert == "") != (c.TLS.DeviceCAKey == "") {
		bad("tls.device_ca_cert", "tls.device_ca_cert (--device-ca-cert) and tls.device_ca_key (--device-ca-key) must be set together, or both left empty for the built-in CA")
	}
	for _, h := range c.TLS.Hosts {
		if !validHost(h) {
			bad("tls.hosts", "%q is neither an IP address nor a DNS name", h)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q: want text or json", c.Log.Format)
	}
	c.validateFirmware(bad)
	c.validateBackup(bad)
	c.validateKeys(bad)
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid config: %w", errors.Join(errs...))
}

// checkNATSURL never echoes the URL: it may hold user:password.
func checkNATSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return errors.New("not a valid URL such as nats://host:4222 (value not shown: it may hold credentials)")
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
		return nil
	}
	return fmt.Errorf("scheme %q: want nats, tls, ws or wss", u.Scheme)
}

// checkListen accepts "host:port" with a numeric port; port -1 (random,
// NATS style) only when allowRandom.
func checkListen(addr string, allowRandom bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, as in :8883 or 127.0.0.1:8883", addr)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil && !validHost(host) {
			return fmt.Errorf("%q: bad host %q", addr, host)
		}
	}
	n, err := strconv.Atoi(port)
	lowest := 0
	if allowRandom {
		lowest = -1
	}
	if err != nil || n < lowest || n > 65535 {
		return fmt.Errorf("%q: bad port %q", addr, port)
	}
	return nil
}

func isUnixSocket(addr string) bool {
	return strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "unix:")
}

// isLoopback reports whether a host:port binds only loopback: 127.0.0.0/8,
// ::1 or the name localhost. An empty host (":9090") binds every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// validHost accepts an IP address or a DNS name (letters, digits, hyphens,
// dots; a leading "*." wildcard).
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Dump writes the effective configuration as TOML that Load accepts back.
// A set secret is written as "[redacted]", an unset one as "".
func (c Config) Dump(w io.Writer) error {
	root := map[string]any{}
	for _, o := range options {
		if o.kind == kindSecretFile {
			continue
		}
		var v any
		switch p := o.field(&c).(type) {
		case *string:
			v = *p
		case *Secret:
			v = ""
			if *p != "" {
				v = Redacted
			}
		case *bool:
			v = *p
		case *int:
			v = *p
		case *[]string:
			v = append([]string{}, *p...)
		case *time.Duration:
			v = p.String()
		}
		m := root
		parts := strings.Split(o.key, ".")
		for _, t := range parts[:len(parts)-1] {
			sub, ok := m[t].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[t] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = v
	}
	if _, err := io.WriteString(w, "# vigil effective configuration; secrets are redacted\n"); err != nil {
		return fmt.Errorf("dump config: %w", err)
	}
	enc := toml.NewEncoder(w)
	enc.Indent = ""
	if err := enc.Encode(root); err != nil {
		return fmt.Errorf("dump config: %w", err)
	}
	return nil
}

func (n NotifyConfig) validate(bad func(key, format string, args ...any)) {
	if n.BaseURL != "" {
		u, err := url.Parse(n.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			bad("notify.base_url", "want an absolute http(s) URL such as https://vigil.example.org, without credentials, query or fragment")
		}
	}
	if n.SMTPHost != "" {
		if n.SMTPTLS != "" && n.SMTPTLS != "starttls" && n.SMTPTLS != "implicit" {
			bad("notify.smtp_tls", "%q: want starttls or implicit (plaintext SMTP is not offered)", n.SMTPTLS)
		}
		if n.SMTPPort < 0 || n.SMTPPort > 65535 {
			bad("notify.smtp_port", "%d: want 1 to 65535, or 0 for the default", n.SMTPPort)
		}
		if a, err := mail.ParseAddress(n.SMTPFrom); err != nil || a.Address == "" {
			bad("notify.smtp_from", "want the sender's e-mail address when notify.smtp_host is set")
		}
	}
	if n.SMSAccount != "" {
		if n.SMSToken.Reveal() == "" {
			bad("notify.sms_token", "required when notify.sms_account is set")
		}
		if !strings.HasPrefix(n.SMSFrom, "+") {
			bad("notify.sms_from", "want the sending number in E.164 form (+447700900123) when notify.sms_account is set")
		}
	}
	for _, c := range n.OutboundAllow {
		if _, err := netip.ParsePrefix(c); err != nil {
			bad("notify.outbound_allow", "%q: want a CIDR such as 10.0.0.0/8", c)
		}
	}
}
