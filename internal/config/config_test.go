package config

import (
	"time"

	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func load(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Load(fs, args, func(k string) string { return env[k] })
}

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	got, err := load(t, nil, nil)
	if err != nil {
		t.Fatalf("load with nothing set: %v", err)
	}
	if diff := cmp.Diff(Default(), got); diff != "" {
		t.Errorf("load with nothing set differs from Default() (-want +got):\n%s", diff)
	}
}

func TestGoodFile(t *testing.T) {
	got, err := load(t, []string{"--config", "testdata/good.toml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DataDir:     "/var/lib/vigil",
		Store:       "postgres://vigil:hunter2@db.example:5432/vigil?sslmode=verify-full",
		AutoMigrate: false,
		NATS: NATSConfig{
			URL:       "nats://nats-1.example:4222,nats://nats-2.example:4222",
			Listen:    "127.0.0.1:-1",
			Sync:      "always",
			CredsFile: "/etc/vigil/nats.creds",
			Replicas:  3,
		},
		MQTT:  MQTTConfig{Listen: "0.0.0.0:8883", MaxPacketBytes: 65536, MaxConnections: 5000, ReceiveMaximum: 32, ClientCerts: "required", SharedIdentity: "takeover", FloodPerMinute: 6000},
		HTTPS: HTTPSConfig{Listen: "[::]:443"},
		Admin: AdminConfig{Listen: "unix:/run/vigil/admin.sock"},
		API:   APIConfig{Listen: "0.0.0.0:8444"},
		Auth:  AuthConfig{IdleTimeout: 15 * time.Minute, MaxLifetime: 12 * time.Hour},
		Safety: SafetyConfig{OfflineAfter: 20 * time.Minute, RemindBefore: 10 * time.Minute, SOSCancelWindow: 30 * time.Second,
			PreAlert: 45 * time.Second, ManDownPreAlert: 20 * time.Second, NoMotionAfter: 3 * time.Minute, BatteryWarn: 25, BatteryCritical: 5},
		TLS: TLSConfig{
			CertFile: "/etc/vigil/server.crt",
			KeyFile:  "/etc/vigil/server.key",
			Hosts:    []string{"vigil.example", "192.0.2.10"},
		},
		Log: LogConfig{Level: "debug", Format: "json"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("good.toml (-want +got):\n%s", diff)
	}
}

// TestFiles loads every case in testdata: good ones must load, bad ones
// must fail with an error naming the option (and never the secret).
func TestFiles(t *testing.T) {
	tests := []struct {
		file    string
		wantErr []string // substrings; none means the file must load
	}{
		{"good.toml", nil},
		{"minimal.toml", nil},
		{"admin_public_allowed.toml", nil},
		{"store_file.toml", nil},
		{"unknown_key.toml", []string{`unknown key "mqtt.max_packet_size"`}},
		{"unknown_table.toml", []string{`unknown key "smtp"`}},
		{"unknown_top_key.toml", []string{`unknown key "datadir"`}},
		{"bad_dotted_quoted_key.toml", []string{`unknown key "mqtt.listen"`}},
		{"bad_type.toml", []string{"mqtt.max_packet_bytes", "want an integer, got string"}},
		{"bad_bool.toml", []string{"auto_migrate", "want a boolean, got string"}},
		{"bad_hosts.toml", []string{"tls.hosts", "want an array of strings"}},
		{"bad_table.toml", []string{"nats: want a table"}},
		{"bad_syntax.toml", []string{"parse config file testdata/bad_syntax.toml", "line 2"}},
		{"bad_store_scheme.toml", []string{"store (--store, VIGIL_STORE)", `"mysql:…"`}},
		{"bad_admin_public.toml", []string{"admin.listen", `"0.0.0.0:9090"`, "--admin-allow-public"}},
		{"bad_admin_all_interfaces.toml", []string{"admin.listen", `":9090"`, "admin.allow_public"}},
		{"bad_sync.toml", []string{"nats.sync", `"sometimes"`}},
		{"bad_replicas_embedded.toml", []string{"nats.replicas", "embedded"}},
		{"bad_tls_pair.toml", []string{"tls.cert_file", "tls.key_file"}},
		{"bad_log.toml", []string{"log.level", `"verbose"`, "log.format", `"xml"`}},
		{"bad_ranges.toml", []string{"mqtt.listen", "bad port", "mqtt.max_packet_bytes", "mqtt.max_connections", "mqtt.receive_maximum", "mqtt.client_certs", `"sometimes"`}},
		{"store_and_store_file.toml", []string{"store and config file testdata/store_and_store_file.toml: store_file are both set"}},
		{"bad_empty_secret_file.toml", []string{"store_file", "is empty"}},
		{"bad_safety.toml", []string{"safety.pre_alert", `"soon": want a duration`}},
		{"bad_safety_ranges.toml", []string{"safety.offline_after", "10s: want 1m to 24h", "safety.pre_alert", "safety.battery_warn"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := load(t, []string{"--config", "testdata/" + tt.file}, nil)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("load succeeded, want error containing %q", tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			for _, secret := range []string{"hunter2", "from-a-file"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q leaks the secret %q", err, secret)
				}
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	_, err := load(t, nil, map[string]string{"VIGIL_CONFIG": "testdata/nope.toml"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want an error wrapping fs.ErrNotExist", err)
	}
}

func TestPrecedence(t *testing.T) {
	file := []byte("[mqtt]\nlisten = \":1001\"\nreceive_maximum = 11\n[log]\nlevel = \"warn\"\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*Config)
	}{
		{"file over default", nil, nil, func(c *Config) {}},
		{
			"env over file",
			nil,
			map[string]string{"VIGIL_MQTT_LISTEN": ":2002", "VIGIL_MQTT_RECEIVE_MAXIMUM": "22"},
			func(c *Config) { c.MQTT.Listen, c.MQTT.ReceiveMaximum = ":2002", 22 },
		},
		{
			"flag over env",
			[]string{"--mqtt-listen", ":3003", "--log-level=error"},
			map[string]string{"VIGIL_MQTT_LISTEN": ":2002", "VIGIL_LOG_LEVEL": "debug"},
			func(c *Config) { c.MQTT.Listen, c.Log.Level = ":3003", "error" },
		},
		{
			"bool flag without value",
			[]string{"--admin-allow-public", "--admin-listen", "0.0.0.0:9090", "--auto-migrate=false"},
			nil,
			func(c *Config) { c.Admin.AllowPublic, c.Admin.Listen, c.AutoMigrate = true, "0.0.0.0:9090", false },
		},
		{
			"env bool and list",
			nil,
			map[string]string{"VIGIL_AUTO_MIGRATE": "false", "VIGIL_TLS_HOSTS": "a.example, 192.0.2.1,,"},
			func(c *Config) { c.AutoMigrate, c.TLS.Hosts = false, []string{"a.example", "192.0.2.1"} },
		},
		{
			"repeated list flag accumulates over env",
			[]string{"--tls-hosts", "a.example", "--tls-hosts", "b.example,c.example"},
			map[string]string{"VIGIL_TLS_HOSTS": "env.example"},
			func(c *Config) { c.TLS.Hosts = []string{"a.example", "b.example", "c.example"} },
		},
		{
			"secret file env over file value",
			nil,
			map[string]string{"VIGIL_STORE_FILE": "store.secret"},
			func(c *Config) { c.Store = "postgres://vigil:from-a-file@db.example/vigil" },
		},
		{
			"secret flag over secret file env",
			[]string{"--store", "sqlite:/tmp/x.db"},
			map[string]string{"VIGIL_STORE_FILE": "store.secret"},
			func(c *Config) { c.Store = "sqlite:/tmp/x.db" },
		},
	}
	files := map[string][]byte{
		"vigil.toml":   file,
		"store.secret": []byte("postgres://vigil:from-a-file@db.example/vigil\r\n"),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := flag.NewFlagSet("test", flag.ContinueOnError)
			flags.SetOutput(io.Discard)
			l := Register(flags)
			l.ReadFile = func(name string) ([]byte, error) {
				if b, ok := files[name]; ok {
					return b, nil
				}
				return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
			}
			env := map[string]string{"VIGIL_CONFIG": "vigil.toml"}
			for k, v := range tt.env {
				env[k] = v
			}
			got, err := l.Load(tt.args, func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			want.MQTT.Listen, want.MQTT.ReceiveMaximum, want.Log.Level = ":1001", 11, "warn"
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigFlagOverVIGIL_CONFIG(t *testing.T) {
	got, err := load(t, []string{"--config", "testdata/good.toml"}, map[string]string{"VIGIL_CONFIG": "testdata/bad_syntax.toml"})
	if err != nil {
		t.Fatal(err)
	}
	if got.DataDir != "/var/lib/vigil" {
		t.Errorf("DataDir = %q, want the one from --config", got.DataDir)
	}
}

func TestLayerErrorsNameTheSource(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"env int", nil, map[string]string{"VIGIL_MQTT_MAX_CONNECTIONS": "many"}, `VIGIL_MQTT_MAX_CONNECTIONS: "many": want an integer`},
		{"env bool", nil, map[string]string{"VIGIL_ADMIN_ALLOW_PUBLIC": "sure"}, `VIGIL_ADMIN_ALLOW_PUBLIC: "sure": want true or false`},
		{"flag int", []string{"--nats-replicas", "x"}, nil, `invalid value "x" for flag -nats-replicas`},
		{"env secret and file", nil, map[string]string{"VIGIL_STORE": "sqlite:a", "VIGIL_STORE_FILE": "b"}, "VIGIL_STORE and VIGIL_STORE_FILE are both set"},
		{"flag secret and file", []string{"--store", "sqlite:a", "--store-file", "b"}, nil, "--store and --store-file are both set"},
		{"env secret file missing", nil, map[string]string{"VIGIL_STORE_FILE": "testdata/nope.secret"}, "VIGIL_STORE_FILE: read secret: open testdata/nope.secret"},
		{"env admin public", nil, map[string]string{"VIGIL_ADMIN_LISTEN": "0.0.0.0:9090"}, "admin.listen (--admin-listen, VIGIL_ADMIN_LISTEN)"},
		{"unknown flag", []string{"--mqtt-listn", ":1"}, nil, "flag provided but not defined: -mqtt-listn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.args, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestHelpIsErrHelp(t *testing.T) {
	_, err := load(t, []string{"-h"}, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
}

// TestAdminListen is security requirement 40's config half: the admin
// listener stays on loopback or a unix socket unless allow_public is set.
func TestAdminListen(t *testing.T) {
	tests := []struct {
		addr        string
		allowPublic bool
		ok          bool
	}{
		{"127.0.0.1:9090", false, true},
		{"127.1.2.3:9090", false, true},
		{"[::1]:9090", false, true},
		{"localhost:9090", false, true},
		{"LOCALHOST:0", false, true},
		{"[::ffff:127.0.0.1]:9090", false, true},
		{"/run/vigil/admin.sock", false, true},
		{"unix:admin.sock", false, true},
		{"0.0.0.0:9090", false, false},
		{":9090", false, false},
		{"[::]:9090", false, false},
		{"192.0.2.1:9090", false, false},
		{"admin.example:9090", false, false},
		{"127.0.0.1", false, false}, // no port
		{"", false, false},
		{"0.0.0.0:9090", true, true},
		{":9090", true, true},
		{"admin.example:9090", true, true},
	}
	for _, tt := range tests {
		c := Default()
		c.Admin.Listen, c.Admin.AllowPublic = tt.addr, tt.allowPublic
		err := c.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("admin.listen %q allow_public=%v: Validate() = %v, want ok=%v", tt.addr, tt.allowPublic, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "admin.listen") {
			t.Errorf("admin.listen %q: error %q does not name admin.listen", tt.addr, err)
		}
	}
}

func TestStoreKind(t *testing.T) {
	tests := []struct {
		store    Secret
		kind     string
		dsn      string
		validate bool
	}{
		{"", StoreSQLite, "data/vigil.db", true},
		{"sqlite:/var/lib/vigil/v.db", StoreSQLite, "/var/lib/vigil/v.db", true},
		{"sqlite:rel.db", StoreSQLite, "rel.db", true},
		{"postgres://u:p@db/vigil", StorePostgres, "postgres://u:p@db/vigil", true},
		{"postgresql://db:5432/vigil?sslmode=disable", StorePostgres, "postgresql://db:5432/vigil?sslmode=disable", true},
		{"sqlite:", "", "", false},
		{"postgres://", "", "", false},
		{"mysql://u:p@db/vigil", "", "", false},
		{"vigil.db", "", "", false},
		{"host=db user=vigil password=p", "", "", false},
	}
	for _, tt := range tests {
		c := Default()
		c.DataDir, c.Store = "data", tt.store
		kind, dsn := c.StoreKind()
		if kind != tt.kind || dsn != tt.dsn {
			t.Errorf("StoreKind(%q) = %q, %q; want %q, %q", tt.store.Reveal(), kind, dsn, tt.kind, tt.dsn)
		}
		err := c.Validate()
		if (err == nil) != tt.validate {
			t.Errorf("Validate with store %q = %v, want ok=%v", tt.store.Reveal(), err, tt.validate)
		}
		if err != nil && strings.Contains(err.Error(), "p@db") || err != nil && strings.Contains(err.Error(), "password=p") {
			t.Errorf("Validate error leaks the store value: %v", err)
		}
	}
}

func TestNATSValidation(t *testing.T) {
	tests := []struct {
		name string
		set  func(*Config)
		ok   bool
	}{
		{"sync duration", func(c *Config) { c.NATS.Sync = "1s" }, true},
		{"sync zero", func(c *Config) { c.NATS.Sync = "0s" }, false},
		{"sync empty", func(c *Config) { c.NATS.Sync = "" }, false},
		{"listen random port", func(c *Config) { c.NATS.Listen = "127.0.0.1:-1" }, true},
		{"listen bad", func(c *Config) { c.NATS.Listen = "127.0.0.1" }, false},
		{"mqtt listen random port refused", func(c *Config) { c.MQTT.Listen = ":-1" }, false},
		{"url ok", func(c *Config) { c.NATS.URL = "tls://a:4222, nats://b:4222" }, true},
		{"url scheme", func(c *Config) { c.NATS.URL = "http://a:4222" }, false},
		{"url no host", func(c *Config) { c.NATS.URL = "localhost" }, false},
		{"replicas 3 external", func(c *Config) { c.NATS.URL, c.NATS.Replicas = "nats://a:4222", 3 }, true},
		{"replicas 0", func(c *Config) { c.NATS.Replicas = 0 }, false},
		{"replicas 7", func(c *Config) { c.NATS.URL, c.NATS.Replicas = "nats://a:4222", 7 }, false},
		{"tls hosts", func(c *Config) { c.TLS.Hosts = []string{"a.example", "*.b.example", "::1", "x"} }, true},
		{"tls host bad", func(c *Config) { c.TLS.Hosts = []string{"a b"} }, false},
		{"tls host url", func(c *Config) { c.TLS.Hosts = []string{"https://a.example"} }, false},
		{"data dir empty", func(c *Config) { c.DataDir = "" }, false},
	}
	for _, tt := range tests {
		c := Default()
		tt.set(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestDumpRoundTrip: the dump is TOML that loads back to the same config.
func TestDumpRoundTrip(t *testing.T) {
	c, err := load(t, []string{"--config", "testdata/good.toml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Store = ""
	c.NATS.URL = "" // secrets do not round-trip: they are redacted
	var buf bytes.Buffer
	if err := c.Dump(&buf); err != nil {
		t.Fatal(err)
	}
	got := Default()
	if err := loadFile(&got, "dump", buf.Bytes(), nil); err != nil {
		t.Fatalf("load dump: %v\n%s", err, buf.String())
	}
	if diff := cmp.Diff(c, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("dump round trip (-want +got):\n%s\ndump:\n%s", diff, buf.String())
	}
	if !strings.Contains(buf.String(), `store = ""`) {
		t.Errorf("dump of an unset secret should show store = \"\":\n%s", buf.String())
	}
}
