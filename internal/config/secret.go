package config

import (
	"fmt"
	"io"
	"log/slog"
)

// Redacted is what a Secret prints instead of its value.
const Redacted = "[redacted]"

// Secret is a string that never prints itself: String, GoString, every fmt
// verb (%v, %+v, %#v, %s, %q, %x …), slog (LogValue) and text/JSON/TOML
// marshalling (MarshalText) all give "[redacted]", also for an empty
// Secret. Reveal returns the value; grep for it to audit where secrets go.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return Redacted }

// Format implements fmt.Formatter, so no verb or flag prints the value.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalText implements encoding.TextMarshaler (used by encoding/json,
// slog's JSON handler and TOML encoders).
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
