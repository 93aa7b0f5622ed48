package config

import (
	"strings"
	"testing"
	"time"
)

func TestKEKPath(t *testing.T) {
	c := Default()
	c.DataDir = "/var/lib/vigil"
	if got, want := c.KEKPath(), "/var/lib/vigil-keys/kek.key"; got != want {
		t.Errorf("default KEKPath = %s, want %s", got, want)
	}
	if w := c.KeysWarnings(); len(w) != 0 {
		t.Errorf("default key file warned: %v", w)
	}
	c.DataDir = "/var/lib/vigil/"
	if got, want := c.KEKPath(), "/var/lib/vigil-keys/kek.key"; got != want {
		t.Errorf("KEKPath with a trailing slash = %s, want %s", got, want)
	}
	for _, in := range []string{"/var/lib/vigil/kek.key", "/var/lib/vigil/keys/kek.key"} {
		c.Keys.KEKFile = in
		w := c.KeysWarnings()
		if len(w) != 1 || !strings.Contains(w[0], "keys.kek_file") || !strings.Contains(w[0], "inside the data directory") {
			t.Errorf("key file %s: warnings %v; want one naming keys.kek_file", in, w)
		}
	}
	c.Keys.KEKFile = "/var/lib/vigilant/kek.key" // a sibling with a common prefix
	if w := c.KeysWarnings(); len(w) != 0 {
		t.Errorf("sibling directory warned: %v", w)
	}
}

func TestKeysValidation(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*Config)
		key  string
	}{
		{"negative cache", func(c *Config) { c.Keys.CacheSize = -1 }, "keys.cache_size"},
		{"huge cache", func(c *Config) { c.Keys.CacheSize = 2_000_000 }, "keys.cache_size"},
		{"short ttl", func(c *Config) { c.Keys.CacheTTL = time.Millisecond }, "keys.cache_ttl"},
		{"long ttl", func(c *Config) { c.Keys.CacheTTL = 48 * time.Hour }, "keys.cache_ttl"},
		{"directory", func(c *Config) { c.Keys.KEKFile = "/etc/vigil/" }, "keys.kek_file"},
	} {
		c := Default()
		tt.set(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s: %v; want an error naming %s", tt.name, err, tt.key)
		}
	}
	c := Default()
	c.Keys = KeysConfig{KEKFile: "/etc/vigil-keys/kek.key", CacheSize: 100, CacheTTL: time.Minute}
	if err := c.Validate(); err != nil {
		t.Errorf("good keys settings: %v", err)
	}
}

func TestKeysFromEnv(t *testing.T) {
	got, err := load(t, nil, map[string]string{"VIGIL_KEYS_KEK_FILE": "/srv/keys/kek.key", "VIGIL_KEYS_CACHE_TTL": "90s"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Keys.KEKFile != "/srv/keys/kek.key" || got.Keys.CacheTTL != 90*time.Second {
		t.Errorf("keys from env: %+v", got.Keys)
	}
}
