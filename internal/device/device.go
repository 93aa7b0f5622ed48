// Package device registers devices and checks their credentials: random ids
// and secrets, the secret kept only as a SHA-256 hash (it is 256 random bits,
// so a slow password hash adds nothing), constant-time verification.
//
// It imports store for the record types only; it must not import the
// concrete store drivers, the bus, gateways or HTTP.
package device

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"vigil/internal/clock"
	"vigil/internal/store"
)

// Store is what the registry needs from the store.
type Store interface {
	GetOrg(ctx context.Context, id string) (store.Org, error)
	CreateOrg(ctx context.Context, o store.Org) error
	CreateDevice(ctx context.Context, d store.Device) error
	GetDevice(ctx context.Context, id string) (store.Device, error)
	ListDevices(ctx context.Context, orgID string) ([]store.Device, error)
	SetDeviceSecret(ctx context.Context, deviceID string, secretHash []byte) error
}

// Errors returned to callers (CLI, API) that they show as-is.
var (
	ErrInvalidName = errors.New("device: name must be 1-100 printable characters")
	ErrInvalidOrg  = errors.New("device: organisation id must be 1-32 lowercase letters, digits or '-', starting with a letter")
	ErrUnknownOrg  = errors.New("device: organisation not found")
)

var orgIDRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ValidOrgID reports whether id is a valid organisation id. Org ids appear
// in bus subjects, so they are restricted to one safe token.
func ValidOrgID(id string) bool { return orgIDRe.MatchString(id) }

// Credentials are shown once, at registration.
type Credentials struct {
	DeviceID string `json:"device_id"`
	Secret   string `json:"secret"`
}

// Registry registers devices and authenticates them.
type Registry struct {
	st  Store
	clk clock.Clock
}

// NewRegistry returns a registry over st.
func NewRegistry(st Store, clk clock.Clock) *Registry { return &Registry{st: st, clk: clk} }

// NewID returns a new device id: "d" and 16 lowercase base32 characters
// (80 random bits), safe in MQTT topics, NATS subjects and URLs.
func NewID() (string, error) { return newID("d") }

// NewPersonID returns a new id for the person who wears a device: "p" and
// 16 lowercase base32 characters, like a device id.
func NewPersonID() (string, error) { return newID("p") }

func newID(prefix string) (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("device: new id: %w", err)
	}
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// NewSecret returns 32 random bytes, base64url without padding.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("device: new secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashSecret is the stored form of a secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Register creates a device in an existing organisation and returns its
// credentials; the secret is not kept and cannot be shown again.
func (r *Registry) Register(ctx context.Context, orgID, name string) (Credentials, error) {
	name = strings.TrimSpace(name)
	if name == "" || len([]rune(name)) > 100 || strings.ContainsFunc(name, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return Credentials{}, ErrInvalidName
	}
	if !ValidOrgID(orgID) {
		return Credentials{}, ErrInvalidOrg
	}
	if _, err := r.st.GetOrg(ctx, orgID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Credentials{}, ErrUnknownOrg
		}
		return Credentials{}, fmt.Errorf("register device: %w", err)
	}
	id, err := NewID()
	if err != nil {
		return Credentials{}, err
	}
	secret, err := NewSecret()
	if err != nil {
		return Credentials{}, err
	}
	d := store.Device{ID: id, OrgID: orgID, Name: name, SecretHash: HashSecret(secret), CreatedAt: r.clk.Now().UTC()}
	if err := r.st.CreateDevice(ctx, d); err != nil {
		return Credentials{}, fmt.Errorf("register device: %w", err)
	}
	return Credentials{DeviceID: id, Secret: secret}, nil
}

// RotateSecret issues a new secret for a device; the old one stops working.
func (r *Registry) RotateSecret(ctx context.Context, deviceID string) (Credentials, error) {
	secret, err := NewSecret()
	if err != nil {
		return Credentials{}, err
	}
	if err := r.st.SetDeviceSecret(ctx, deviceID, HashSecret(secret)); err != nil {
		return Credentials{}, fmt.Errorf("rotate device secret: %w", err)
	}
	return Credentials{DeviceID: deviceID, Secret: secret}, nil
}

// AuthenticateDevice checks a device id and secret. ok is false for an
// unknown or disabled device or a wrong secret; err only when the check
// itself could not be made.
func (r *Registry) AuthenticateDevice(ctx context.Context, deviceID, secret string) (orgID string, ok bool, err error) {
	if deviceID == "" || secret == "" || len(deviceID) > 64 || len(secret) > 256 {
		return "", false, nil
	}
	d, err := r.st.GetDevice(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the same work as a real comparison.
		subtle.ConstantTimeCompare(HashSecret(secret), make([]byte, sha256.Size))
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("authenticate device: %w", err)
	}
	if subtle.ConstantTimeCompare(HashSecret(secret), d.SecretHash) != 1 {
		return "", false, nil
	}
	if !d.DisabledAt.IsZero() && !d.DisabledAt.After(r.clk.Now()) {
		return "", false, nil
	}
	return d.OrgID, true, nil
}

// AuthenticateDeviceCert checks a device that presented a client
// certificate already verified against Vigil's CA and naming deviceID:
// ok is false for an unknown or disabled device, or when fingerprint is
// not the one stored at its enrolment (an older or another certificate).
func (r *Registry) AuthenticateDeviceCert(ctx context.Context, deviceID, fingerprint string) (orgID string, ok bool, err error) {
	if deviceID == "" || fingerprint == "" || len(deviceID) > 64 {
		return "", false, nil
	}
	d, err := r.st.GetDevice(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("authenticate device certificate: %w", err)
	}
	if d.CertFingerprint == "" || subtle.ConstantTimeCompare([]byte(fingerprint), []byte(d.CertFingerprint)) != 1 {
		return "", false, nil
	}
	if !d.DisabledAt.IsZero() && !d.DisabledAt.After(r.clk.Now()) {
		return "", false, nil
	}
	return d.OrgID, true, nil
}

// EnsureOrg creates an organisation if it does not exist (used by the demo
// and the simulator's provisioning, never implicitly by `device add`).
func (r *Registry) EnsureOrg(ctx context.Context, id, name string) error {
	if !ValidOrgID(id) {
		return ErrInvalidOrg
	}
	if _, err := r.st.GetOrg(ctx, id); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("ensure org: %w", err)
	}
	err := r.st.CreateOrg(ctx, store.Org{ID: id, Name: name, CreatedAt: r.clk.Now().UTC()})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("ensure org: %w", err)
	}
	return nil
}
