package config

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

type kind int

const (
	kindString kind = iota
	kindSecret
	kindSecretFile // names a file whose contents set the Secret of the option it derives from
	kindBool
	kindInt
	kindList
	kindDuration // a Go duration: "90s", "15m"
)

// option is one setting: its TOML key, flag and (derived) environment
// variable, and the Config field it sets.
type option struct {
	key   string // TOML key, "table.key" inside a table
	flag  string
	usage string
	kind  kind
	field func(*Config) any // pointer to the field
}

// env is VIGIL_ and the key in upper case with dots as underscores.
func (o option) env() string {
	return "VIGIL_" + strings.ToUpper(strings.ReplaceAll(o.key, ".", "_"))
}

// options is the single, read-only table of settings. Every Secret gets a
// derived *_file option (withSecretFiles).
var options = withSecretFiles(slices.Concat([]option{
	{"data_dir", "data-dir", "data `dir`ectory: SQLite database, JetStream data, TLS CA", kindString, func(c *Config) any { return &c.DataDir }},
	{"store", "store", "`store`: empty for SQLite in the data dir, sqlite:PATH, or postgres://… (secret; prefer --store-file)", kindSecret, func(c *Config) any { return &c.Store }},
	{"auto_migrate", "auto-migrate", "apply pending schema migrations at start-up", kindBool, func(c *Config) any { return &c.AutoMigrate }},
	{"nats.url", "nats-url", "external NATS server `URL`s, comma-separated; empty runs an embedded server (secret: may hold credentials)", kindSecret, func(c *Config) any { return &c.NATS.URL }},
	{"nats.listen", "nats-listen", "embedded NATS TCP listener `address` (e.g. 127.0.0.1:-1); empty for in-process only", kindString, func(c *Config) any { return &c.NATS.Listen }},
	{"nats.sync", "nats-sync", "JetStream fsync `policy`: default (every 2 min; survives kill -9, not power loss), always, or a duration like 1s", kindString, func(c *Config) any { return &c.NATS.Sync }},
	{"nats.creds_file", "nats-creds", "NATS credentials `file` for an external server", kindString, func(c *Config) any { return &c.NATS.CredsFile }},
	{"nats.replicas", "nats-replicas", "`n` replicas of the event stream (1 on one machine, 3 on a cluster)", kindInt, func(c *Config) any { return &c.NATS.Replicas }},
	{"mqtt.listen", "mqtt-listen", "MQTT over TLS listen `address`", kindString, func(c *Config) any { return &c.MQTT.Listen }},
	{"mqtt.max_packet_bytes", "mqtt-max-packet-bytes", "largest MQTT packet accepted, in `bytes`", kindInt, func(c *Config) any { return &c.MQTT.MaxPacketBytes }},
	{"mqtt.max_connections", "mqtt-max-connections", "most concurrent MQTT `connections`", kindInt, func(c *Config) any { return &c.MQTT.MaxConnections }},
	{"mqtt.receive_maximum", "mqtt-receive-maximum", "QoS 1 `messages` in flight per MQTT client (receive maximum)", kindInt, func(c *Config) any { return &c.MQTT.ReceiveMaximum }},
	{"mqtt.shared_identity", "mqtt-shared-identity", "when one device identity connects from several places: `takeover` (the newest wins; a security event is raised) or refuse", kindString, func(c *Config) any { return &c.MQTT.SharedIdentity }},
	{"mqtt.flood_per_minute", "mqtt-flood-per-minute", "`messages` a minute from one device that flag it for quarantine (-1: off)", kindInt, func(c *Config) any { return &c.MQTT.FloodPerMinute }},
	{"mqtt.client_certs", "mqtt-client-certs", "device client certificates on MQTT: `required` (mutual TLS, the default) or optional (fallback: a device without a certificate signs in with its secret)", kindString, func(c *Config) any { return &c.MQTT.ClientCerts }},
	{"trackers.gt06_listen", "gt06-listen", "GT06/Concox tracker TCP listen `address` (e.g. :5023); empty: off. Plain TCP and IMEI-only identity: use on a private APN or VPN (docs/trackers.md)", kindString, func(c *Config) any { return &c.Trackers.GT06Listen }},
	{"https.listen", "https-listen", "HTTPS listen `address`", kindString, func(c *Config) any { return &c.HTTPS.Listen }},
	{"admin.listen", "admin-listen", "admin/metrics listen `address`: loopback or a unix socket (/path or unix:path)", kindString, func(c *Config) any { return &c.Admin.Listen }},
	{"admin.allow_public", "admin-allow-public", "allow an admin listen address that is not loopback", kindBool, func(c *Config) any { return &c.Admin.AllowPublic }},
	{"api.listen", "api-listen", "an extra listen `address` for the JSON API (it is always on the HTTPS listener too; every route needs sign-in or an API token)", kindString, func(c *Config) any { return &c.API.Listen }},
	{"auth.idle_timeout", "idle-timeout", "end a sign-in session unused this `duration`", kindDuration, func(c *Config) any { return &c.Auth.IdleTimeout }},
	{"console.tiles", "console-tiles", "map tile server `URL` template (https://host/{z}/{x}/{y}.png); empty draws maps on a plain grid and sends no location to a third party", kindString, func(c *Config) any { return &c.Console.Tiles }},
	{"console.tiles_attribution", "console-tiles-attribution", "attribution `text` shown on maps with tiles", kindString, func(c *Config) any { return &c.Console.TilesAttribution }},
	{"auth.oidc_issuer", "oidc-issuer", "OpenID Connect identity provider `URL` for single sign-on (off when empty)", kindString, func(c *Config) any { return &c.Auth.OIDCIssuer }},
	{"auth.oidc_client_id", "oidc-client-id", "this server's OpenID Connect client `id`", kindString, func(c *Config) any { return &c.Auth.OIDCClientID }},
	{"auth.oidc_client_secret", "oidc-client-secret", "OpenID Connect client `secret` (secret; prefer --oidc-client-secret-file)", kindSecret, func(c *Config) any { return &c.Auth.OIDCClientSecret }},
	{"auth.max_lifetime", "session-lifetime", "end any sign-in session after this `duration`", kindDuration, func(c *Config) any { return &c.Auth.MaxLifetime }},
	{"safety.offline_after", "offline-after", "raise device_offline after this `duration` without an event from a monitored device", kindDuration, func(c *Config) any { return &c.Safety.OfflineAfter }},
	{"safety.remind_before", "remind-before", "send check-in reminders this `duration` before a check-in is due (0 for none)", kindDuration, func(c *Config) any { return &c.Safety.RemindBefore }},
	{"safety.sos_cancel_window", "sos-cancel-window", "how long (`duration`) the wearer may cancel an SOS as a false press", kindDuration, func(c *Config) any { return &c.Safety.SOSCancelWindow }},
	{"safety.pre_alert", "pre-alert", "pre-alert `duration` of a fall or man-down before it is raised", kindDuration, func(c *Config) any { return &c.Safety.PreAlert }},
	{"safety.man_down_pre_alert", "man-down-pre-alert", "pre-alert `duration` of a man-down or no-motion alarm", kindDuration, func(c *Config) any { return &c.Safety.ManDownPreAlert }},
	{"safety.no_motion_after", "no-motion-after", "raise no_motion after this `duration` without movement in a session (0: off)", kindDuration, func(c *Config) any { return &c.Safety.NoMotionAfter }},
	{"safety.battery_warn", "battery-warn", "low-battery warning threshold in `percent`", kindInt, func(c *Config) any { return &c.Safety.BatteryWarn }},
	{"safety.battery_critical", "battery-critical", "critical battery threshold in `percent`", kindInt, func(c *Config) any { return &c.Safety.BatteryCritical }},
	{"notify.base_url", "notify-base-url", "the console's public base `URL`: every link in a message is built from it", kindString, func(c *Config) any { return &c.Notify.BaseURL }},
	{"notify.smtp_host", "smtp-host", "SMTP server `host` for e-mail notifications; empty turns e-mail off", kindString, func(c *Config) any { return &c.Notify.SMTPHost }},
	{"notify.smtp_port", "smtp-port", "SMTP `port` (0: 587 for starttls, 465 for implicit)", kindInt, func(c *Config) any { return &c.Notify.SMTPPort }},
	{"notify.smtp_tls", "smtp-tls", "SMTP TLS `mode`: starttls (required, never plaintext) or implicit", kindString, func(c *Config) any { return &c.Notify.SMTPTLS }},
	{"notify.smtp_username", "smtp-username", "SMTP `user` name", kindString, func(c *Config) any { return &c.Notify.SMTPUsername }},
	{"notify.smtp_password", "smtp-password", "SMTP `password` (secret; prefer --smtp-password-file)", kindSecret, func(c *Config) any { return &c.Notify.SMTPPassword }},
	{"notify.smtp_from", "smtp-from", "sender `address` of notification e-mail", kindString, func(c *Config) any { return &c.Notify.SMTPFrom }},
	{"notify.sms_account", "sms-account", "Twilio-compatible SMS `account` SID; empty turns SMS off", kindString, func(c *Config) any { return &c.Notify.SMSAccount }},
	{"notify.sms_token", "sms-token", "SMS provider auth `token` (secret; prefer --sms-token-file)", kindSecret, func(c *Config) any { return &c.Notify.SMSToken }},
	{"notify.sms_from", "sms-from", "SMS sender `number` in E.164 form", kindString, func(c *Config) any { return &c.Notify.SMSFrom }},
	{"notify.sms_base_url", "sms-base-url", "SMS provider API base `URL` (default https://api.twilio.com)", kindString, func(c *Config) any { return &c.Notify.SMSBaseURL }},
	{"notify.webhook_key", "webhook-key", "HMAC `key` signing every webhook (secret; prefer --webhook-key-file); empty turns webhooks off", kindSecret, func(c *Config) any { return &c.Notify.WebhookKey }},
	{"notify.outbound_allow", "outbound-allow", "private `networks` (comma-separated CIDRs) webhooks and the SMS provider may reach; all private ranges are refused otherwise", kindList, func(c *Config) any { return &c.Notify.OutboundAllow }},
	{"notify.outbound_ca_file", "outbound-ca-file", "PEM `file` of a private CA trusted, besides the system roots, for webhooks, the SMS provider and SMTP", kindString, func(c *Config) any { return &c.Notify.OutboundCAFile }},
	{"tls.cert_file", "tls-cert", "TLS certificate `file` (PEM); empty for the built-in CA", kindString, func(c *Config) any { return &c.TLS.CertFile }},
	{"tls.key_file", "tls-key", "TLS private key `file` (PEM), with --tls-cert", kindString, func(c *Config) any { return &c.TLS.KeyFile }},
	{"tls.device_ca_cert", "device-ca-cert", "an external CA certificate `file` (PEM; an intermediate of your own PKI) that issues and alone is trusted for device client certificates; empty: the built-in CA", kindString, func(c *Config) any { return &c.TLS.DeviceCACert }},
	{"tls.device_ca_key", "device-ca-key", "the external device CA's private key `file` (PEM PKCS#8), with --device-ca-cert", kindString, func(c *Config) any { return &c.TLS.DeviceCAKey }},
	{"tls.hosts", "tls-hosts", "extra DNS names/IPs (comma-separated `hosts`) for the generated server certificate", kindList, func(c *Config) any { return &c.TLS.Hosts }},
	{"log.level", "log-level", "log `level`: debug, info, warn or error", kindString, func(c *Config) any { return &c.Log.Level }},
	{"log.format", "log-format", "log `format`: text or json", kindString, func(c *Config) any { return &c.Log.Format }},
}, firmwareOptions, backupOptions, keysOptions))

func withSecretFiles(opts []option) []option {
	var out []option
	for _, o := range opts {
		out = append(out, o)
		if o.kind == kindSecret {
			out = append(out, option{
				key:   o.key + "_file",
				flag:  o.flag + "-file",
				usage: "read " + o.key + " from this `file` (one trailing newline trimmed)",
				kind:  kindSecretFile,
				field: o.field,
			})
		}
	}
	return out
}

func lookup(key string) (option, bool) {
	for _, o := range options {
		if o.key == key {
			return o, true
		}
	}
	return option{}, false
}

// isTable reports whether name is a TOML table of the config ("nats").
func isTable(name string) bool {
	for _, o := range options {
		if t, _, ok := strings.Cut(o.key, "."); ok && t == name {
			return true
		}
	}
	return false
}

// optionNames is how errors name an option: all three spellings.
func optionNames(key string) string {
	o, ok := lookup(key)
	if !ok {
		return key
	}
	return fmt.Sprintf("%s (--%s, %s)", o.key, o.flag, o.env())
}

// Loader loads a Config for one subcommand's FlagSet. Register it before
// the subcommand adds its own flags or after; Load parses the FlagSet.
type Loader struct {
	// ReadFile reads the config file and *_file secrets; os.ReadFile
	// unless replaced (tests).
	ReadFile func(name string) ([]byte, error)

	fs     *flag.FlagSet
	config *string
	flags  []*flagValue
}

// Register adds --config and one flag per option to fs.
func Register(fs *flag.FlagSet) *Loader {
	l := &Loader{ReadFile: os.ReadFile, fs: fs}
	l.config = fs.String("config", "", "TOML config `file` (env VIGIL_CONFIG)")
	def := Default()
	for _, o := range options {
		v := &flagValue{opt: o, def: defaultString(o, &def)}
		fs.Var(v, o.flag, o.usage+" (env "+o.env()+")")
		l.flags = append(l.flags, v)
	}
	return l
}

// Load registers the flags on fs, parses args and returns the validated
// Config. getenv is os.Getenv in production.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	return Register(fs).Load(args, getenv)
}

// Load parses args with the FlagSet given to Register, layers defaults,
// the config file, VIGIL_* variables and the flags, and validates. An
// environment variable set to "" counts as unset. Errors from fs.Parse
// (including flag.ErrHelp) are returned as they are.
func (l *Loader) Load(args []string, getenv func(string) string) (Config, error) {
	if err := l.fs.Parse(args); err != nil {
		return Config{}, err
	}
	c := Default()
	path := *l.config
	if path == "" {
		path = getenv("VIGIL_CONFIG")
	}
	if path != "" {
		data, err := l.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("read config file: %w", err)
		}
		if err := loadFile(&c, path, data, l.ReadFile); err != nil {
			return Config{}, err
		}
	}

	env := map[string]any{}
	for _, o := range options {
		if v := getenv(o.env()); v != "" {
			env[o.key] = rawString(v)
		}
	}
	if err := apply(&c, env, func(o option) string { return o.env() }, l.ReadFile); err != nil {
		return Config{}, err
	}

	flags := map[string]any{}
	for _, v := range l.flags {
		if v.set {
			flags[v.opt.key] = rawString(v.val)
		}
	}
	if err := apply(&c, flags, func(o option) string { return "--" + o.flag }, l.ReadFile); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// loadFile applies TOML data (named path in errors) over c. It does not
// validate the result. Unknown keys and wrongly typed values are errors.
func loadFile(c *Config, path string, data []byte, readFile func(string) ([]byte, error)) error {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return fmt.Errorf("parse config file %s: %w", path, err)
	}
	vals := map[string]any{}
	var errs []error
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			full, v := prefix+k, m[k]
			switch sub, isMap := v.(map[string]any); {
			case strings.Contains(k, "."):
				errs = append(errs, fmt.Errorf("unknown key %q", full))
			case prefix == "" && isTable(k):
				if !isMap {
					errs = append(errs, fmt.Errorf("%s: want a table ([%s]), got %s", k, k, tomlType(v)))
					continue
				}
				walk(full+".", sub)
			default:
				if _, ok := lookup(full); !ok {
					errs = append(errs, fmt.Errorf("unknown key %q", full))
					continue
				}
				vals[full] = v
			}
		}
	}
	walk("", raw)
	if len(errs) > 0 {
		return fmt.Errorf("config file %s: %w", path, errors.Join(errs...))
	}
	return apply(c, vals, func(o option) string { return "config file " + path + ": " + o.key }, readFile)
}

// rawString is a value from the environment or a flag, still to be parsed;
// TOML values arrive typed (string, int64, bool, []any).
type rawString string

// apply sets the options present in one layer (by key), naming each
// problem with name(option).
func apply(c *Config, vals map[string]any, name func(option) string, readFile func(string) ([]byte, error)) error {
	var errs []error
	for _, o := range options {
		v, ok := vals[o.key]
		if !ok {
			continue
		}
		if o.kind == kindSecret {
			if _, dup := vals[o.key+"_file"]; dup {
				f, _ := lookup(o.key + "_file")
				errs = append(errs, fmt.Errorf("%s and %s are both set; use one", name(o), name(f)))
				continue
			}
		}
		if err := set(c, o, v, readFile); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name(o), err))
		}
	}
	return errors.Join(errs...)
}

// set parses v for option o into c. Error text never holds a secret.
func set(c *Config, o option, v any, readFile func(string) ([]byte, error)) error {
	switch o.kind {
	case kindString, kindSecret, kindSecretFile:
		s, ok := v.(string)
		if r, isRaw := v.(rawString); isRaw {
			s, ok = string(r), true
		}
		if !ok {
			return fmt.Errorf("want a string, got %s", tomlType(v))
		}
		switch p := o.field(c).(type) {
		case *string:
			*p = s
		case *Secret:
			if o.kind == kindSecretFile {
				data, err := readFile(s)
				if err != nil {
					return fmt.Errorf("read secret: %w", err)
				}
				s = strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
				if s == "" {
					return fmt.Errorf("secret file %s is empty", v)
				}
			}
			*p = Secret(s)
		}
	case kindBool:
		p := o.field(c).(*bool)
		switch v := v.(type) {
		case bool:
			*p = v
		case rawString:
			b, err := strconv.ParseBool(string(v))
			if err != nil {
				return fmt.Errorf("%q: want true or false", string(v))
			}
			*p = b
		default:
			return fmt.Errorf("want a boolean, got %s", tomlType(v))
		}
	case kindInt:
		p := o.field(c).(*int)
		switch v := v.(type) {
		case int64:
			if int64(int(v)) != v {
				return fmt.Errorf("%d is out of range", v)
			}
			*p = int(v)
		case rawString:
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return fmt.Errorf("%q: want an integer", string(v))
			}
			*p = n
		default:
			return fmt.Errorf("want an integer, got %s", tomlType(v))
		}
	case kindDuration:
		p := o.field(c).(*time.Duration)
		var str string
		switch v := v.(type) {
		case string:
			str = v
		case rawString:
			str = string(v)
		default:
			return fmt.Errorf("want a duration string such as \"15m\", got %s", tomlType(v))
		}
		d, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("%q: want a duration such as 90s or 15m", str)
		}
		*p = d
	case kindList:
		p := o.field(c).(*[]string)
		switch v := v.(type) {
		case []any:
			list := make([]string, 0, len(v))
			for i, e := range v {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("element %d: want a string, got %s", i, tomlType(e))
				}
				list = append(list, s)
			}
			*p = list
		case rawString:
			*p = splitList(string(v))
		default:
			return fmt.Errorf("want an array of strings, got %s", tomlType(v))
		}
	}
	return nil
}

func splitList(s string) []string {
	list := []string{}
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			list = append(list, e)
		}
	}
	return list
}

// tomlType names the TOML type of a decoded value, never the value.
func tomlType(v any) string {
	switch v.(type) {
	case string, rawString:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []any, []map[string]any:
		return "array"
	case map[string]any:
		return "table"
	case time.Time:
		return "datetime"
	}
	return fmt.Sprintf("%T", v)
}

// defaultString is the default shown by -help; never a secret.
func defaultString(o option, def *Config) string {
	switch p := o.field(def).(type) {
	case *string:
		return *p
	case *bool:
		if !*p {
			return "" // flag's help omits a zero default
		}
		return "true"
	case *int:
		return strconv.Itoa(*p)
	case *[]string:
		return strings.Join(*p, ",")
	case *time.Duration:
		return p.String()
	}
	return ""
}

// flagValue records a flag's raw value so that flags apply last, after
// the file and the environment. A list flag given twice accumulates.
type flagValue struct {
	opt option
	def string
	val string
	set bool
}

// String is the default shown by -help, never the value set (it may be a
// secret).
func (v *flagValue) String() string {
	if v == nil {
		return ""
	}
	return v.def
}

func (v *flagValue) Set(s string) error {
	switch v.opt.kind {
	case kindBool:
		if _, err := strconv.ParseBool(s); err != nil {
			return errors.New("want true or false")
		}
	case kindInt:
		if _, err := strconv.Atoi(s); err != nil {
			return errors.New("want an integer")
		}
	case kindDuration:
		if _, err := time.ParseDuration(s); err != nil {
			return errors.New("want a duration such as 90s or 15m")
		}
	case kindList:
		if v.set && v.val != "" {
			s = v.val + "," + s
		}
	}
	v.val, v.set = s, true
	return nil
}

func (v *flagValue) IsBoolFlag() bool { return v.opt.kind == kindBool }
