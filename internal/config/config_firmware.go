package config

import "time"

// FirmwareConfig is firmware updates (issue 8): how long what the server
// signs with its online key stays valid, and when the fleet view and the
// known-problem check speak up.
type FirmwareConfig struct {
	// TimestampTTL is the life of a timestamp the server signs; a device
	// that sees none fresher for that long refuses updates as frozen.
	TimestampTTL time.Duration
	// DirectorTTL is the life of a device's director targets.
	DirectorTTL time.Duration
	// ProblemAfter is how long a device may run a version marked with a
	// known problem before a security event is raised.
	ProblemAfter time.Duration
	// StaleAfter is when a device that has not checked for updates counts
	// as stale in the compliance view.
	StaleAfter time.Duration
	// CheckEvery is how often the known-problem check runs.
	CheckEvery time.Duration
	// MaxImageMB caps one firmware image.
	MaxImageMB int
}

// firmwareOptions are the firmware.* settings.
var firmwareOptions = []option{
	{"firmware.timestamp_ttl", "firmware-timestamp-ttl", "life of the update timestamps the server signs (`duration`, 1h–30 days; default 24h); devices refuse updates as frozen after it", kindDuration, func(c *Config) any { return &c.Firmware.TimestampTTL }},
	{"firmware.director_ttl", "firmware-director-ttl", "life of a device's signed firmware choice (`duration`, 1h–90 days; default 7 days)", kindDuration, func(c *Config) any { return &c.Firmware.DirectorTTL }},
	{"firmware.problem_after", "firmware-problem-after", "raise a security event when a device runs a version with a known problem for this `duration`", kindDuration, func(c *Config) any { return &c.Firmware.ProblemAfter }},
	{"firmware.stale_after", "firmware-stale-after", "a device that has not checked for updates for this `duration` is stale in the compliance view", kindDuration, func(c *Config) any { return &c.Firmware.StaleAfter }},
	{"firmware.check_every", "firmware-check-every", "run the known-problem check every `duration`", kindDuration, func(c *Config) any { return &c.Firmware.CheckEvery }},
	{"firmware.max_image_mb", "firmware-max-image-mb", "largest firmware image accepted, in `MiB` (1–1024)", kindInt, func(c *Config) any { return &c.Firmware.MaxImageMB }},
}

// defaultFirmware is all zeros: each zero takes the firmware package's
// default (timestamps 24h, director choices 7 days, known problems after
// 24h, stale after 7 days, the check every 5 minutes, images up to 64 MiB).
func defaultFirmware() FirmwareConfig { return FirmwareConfig{} }

func (c Config) validateFirmware(bad func(key, format string, args ...any)) {
	f := c.Firmware
	between := func(key string, d, lo, hi time.Duration) {
		if d != 0 && (d < lo || d > hi) {
			bad(key, "%v: want %v to %v (0 for the default)", d, lo, hi)
		}
	}
	between("firmware.timestamp_ttl", f.TimestampTTL, time.Hour, 30*24*time.Hour)
	between("firmware.director_ttl", f.DirectorTTL, time.Hour, 90*24*time.Hour)
	between("firmware.problem_after", f.ProblemAfter, time.Minute, 365*24*time.Hour)
	between("firmware.stale_after", f.StaleAfter, time.Hour, 365*24*time.Hour)
	between("firmware.check_every", f.CheckEvery, time.Second, 24*time.Hour)
	if f.MaxImageMB < 0 || f.MaxImageMB > 1024 {
		bad("firmware.max_image_mb", "%d: want 1 to 1024 (0 for the default, 64)", f.MaxImageMB)
	}
}
