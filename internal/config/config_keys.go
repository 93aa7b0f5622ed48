package config

// KeysConfig is data-encryption keys (issue 9).
type KeysConfig struct{}

// keysOptions are the keys.* settings.
var keysOptions = []option{}

func defaultKeys() KeysConfig { return KeysConfig{} }

func (c Config) validateKeys(bad func(key, format string, args ...any)) {}
