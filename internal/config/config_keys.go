package config

import (
	"path/filepath"
	"strings"
	"time"
)

// KeysConfig is data-encryption keys (issue 9): personal data is sealed
// under per-person data keys, wrapped by the key-encryption key (KEK) in
// KEKFile. The KEK must not live in the data directory: a backup of the
// data directory then holds only ciphertext, and destroying a person's
// data key shreds their data in every earlier backup too.
type KeysConfig struct {
	// KEKFile is the key-encryption key file (internal/seal format, mode
	// 0600, created on first start). Empty: KEKPath's default,
	// vigil-keys/kek.key beside the data directory.
	KEKFile string
	// CacheSize is how many unwrapped data keys a process keeps; 0 for
	// the default, 4096.
	CacheSize int
	// CacheTTL is how long an unwrapped data key is kept: an erasure made
	// by another process reaches this one's cache at most this late; 0
	// for the default, 5 min.
	CacheTTL time.Duration
}

// keysOptions are the keys.* settings.
var keysOptions = []option{
	{"keys.kek_file", "kek-file", "key-encryption key `file` wrapping the data keys of personal data; keep it outside the data directory and its backups (default: vigil-keys/kek.key beside the data directory)", kindString, func(c *Config) any { return &c.Keys.KEKFile }},
	{"keys.cache_size", "keys-cache-size", "unwrapped data `keys` kept in memory (0: 4096)", kindInt, func(c *Config) any { return &c.Keys.CacheSize }},
	{"keys.cache_ttl", "keys-cache-ttl", "how long (`duration`) an unwrapped data key is kept in memory; an erasure reaches other processes at most this late (0: 5m)", kindDuration, func(c *Config) any { return &c.Keys.CacheTTL }},
}

// defaultKeys is the zero value: every zero setting means its default
// (KEKPath; datakey's cache of 4096 keys for 5 minutes).
func defaultKeys() KeysConfig { return KeysConfig{} }

// KEKPath is the key-encryption key file: keys.kek_file, or
// <parent of data_dir>/vigil-keys/kek.key (for data_dir /var/lib/vigil:
// /var/lib/vigil-keys/kek.key), which a backup of the data directory does
// not contain.
func (c Config) KEKPath() string {
	if c.Keys.KEKFile != "" {
		return c.Keys.KEKFile
	}
	dir := filepath.Clean(c.DataDir)
	return filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-keys", "kek.key")
}

// KeysWarnings are problems with the key setup that do not stop the
// server: `vigil config check` and start-up print them.
func (c Config) KeysWarnings() []string {
	if c.DataDir == "" {
		return nil
	}
	if inside(c.KEKPath(), c.DataDir) {
		return []string{optionNames("keys.kek_file") + ": the key-encryption key " + c.KEKPath() +
			" is inside the data directory: every backup of the data directory then carries the key with the data, and erased people's data stays readable in earlier backups; move it outside (and out of backups)"}
	}
	return nil
}

// inside reports whether path is dir or below it (lexically, after
// making both absolute).
func inside(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func (c Config) validateKeys(bad func(key, format string, args ...any)) {
	k := c.Keys
	if k.CacheSize < 0 || k.CacheSize > 1_000_000 {
		bad("keys.cache_size", "want 0 (the default) to 1000000, got %d", k.CacheSize)
	}
	if k.CacheTTL != 0 && (k.CacheTTL < time.Second || k.CacheTTL > 24*time.Hour) {
		bad("keys.cache_ttl", "want 1s to 24h (or 0 for the default), got %v", k.CacheTTL)
	}
	if k.KEKFile != "" && (strings.ContainsRune(k.KEKFile, 0) || strings.HasSuffix(k.KEKFile, string(filepath.Separator))) {
		bad("keys.kek_file", "want a file path")
	}
}
