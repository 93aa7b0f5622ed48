package config

// FirmwareConfig is firmware updates (issue 8).
type FirmwareConfig struct{}

// firmwareOptions are the firmware.* settings.
var firmwareOptions = []option{}

func defaultFirmware() FirmwareConfig { return FirmwareConfig{} }

func (c Config) validateFirmware(bad func(key, format string, args ...any)) {}
