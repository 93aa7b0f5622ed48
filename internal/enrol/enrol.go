// Package enrol is device enrolment (security requirement 3): an admin
// creates a single-use, short-lived token bound to one device id; the
// device generates its own key (ECDSA P-256 or Ed25519; the private key
// never leaves it), and exchanges the token and a CSR for a client
// certificate from Vigil's CA. Only the token's SHA-256 is stored; using it
// is one conditional write, so of two concurrent requests one wins.
//
// Domain code: it must not import HTTP, the bus, store drivers or
// gateways (internal/app TestDeps). internal/gateway/httpgw serves it and
// maps a Refusal's code to a status. It starts no goroutine.
package enrol

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"vigil/internal/clock"
	"vigil/internal/pki"
	"vigil/internal/store"
)

// Defaults.
const (
	DefaultTokenTTL = 15 * time.Minute
	MaxTokenTTL     = 7 * 24 * time.Hour
)

// Store is what enrolment needs from the store.
type Store interface {
	GetDevice(ctx context.Context, id string) (store.Device, error)
	CreateEnrolmentToken(ctx context.Context, t store.EnrolmentToken) error
	UseEnrolmentToken(ctx context.Context, tokenHash []byte, deviceID string, at time.Time) (store.EnrolmentToken, error)
	SetDeviceCertFingerprint(ctx context.Context, deviceID, fingerprint string) error
}

// Config tunes enrolment; the zero value takes the defaults.
type Config struct {
	CertValidity time.Duration // default pki.DeviceValidity (1 year)
}

// Refusal codes: why an enrolment was refused. They are safe to show.
const (
	CodeTokenInvalid   = "token_invalid"   // unknown token, another device's, or a disabled device
	CodeTokenUsed      = "token_used"      // the token was already used
	CodeTokenExpired   = "token_expired"   // the token expired unused
	CodeBadCSR         = "bad_csr"         // not a CSR, or its signature does not verify
	CodeKeyNotAllowed  = "key_not_allowed" // the key is not ECDSA P-256 or Ed25519
	CodeInvalidRequest = "invalid_request" // a field is missing or malformed
)

// Refusal is an enrolment refused for a reason the client may know.
type Refusal struct {
	Code       string
	Msg        string
	RetryAfter time.Duration // rate_limited: when to try again
}

func (r *Refusal) Error() string { return "enrol: " + r.Msg }

// RefusalMessage is the safe text for the client.
func (r *Refusal) RefusalMessage() string { return r.Msg }

// RetryAfterSeconds is when a rate-limited client may try again (0: not
// said).
func (r *Refusal) RetryAfterSeconds() int { return int((r.RetryAfter + time.Second - 1) / time.Second) }

// RefusalCode lets the HTTP edge classify the error without importing
// this package.
func (r *Refusal) RefusalCode() string { return r.Code }

func refuse(code, msg string) error { return &Refusal{Code: code, Msg: msg} }

// Service issues tokens and enrols devices.
type Service struct {
	st  Store
	ca  *pki.CA
	clk clock.Clock
	log *slog.Logger
	cfg Config
}

// New returns the enrolment service.
func New(cfg Config, st Store, ca *pki.CA, clk clock.Clock, log *slog.Logger) *Service {
	if cfg.CertValidity <= 0 {
		cfg.CertValidity = pki.DeviceValidity
	}
	return &Service{st: st, ca: ca, clk: clk, log: log, cfg: cfg}
}

// Token is an issued enrolment token; Value is shown once.
type Token struct {
	DeviceID  string    `json:"device_id"`
	Value     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// HashToken is the stored form of a token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte("vigil-enrol\x00" + token))
	return h[:]
}

// TokenStore keeps enrolment tokens.
type TokenStore interface {
	CreateEnrolmentToken(ctx context.Context, t store.EnrolmentToken) error
}

// NewToken issues a token for an existing device (unknown: an error
// wrapping store.ErrNotFound), valid from now for ttl (0: 15 minutes; at
// most 7 days): 160 random bits, base32 lower case. Only its hash is
// stored; the value is returned once.
func NewToken(ctx context.Context, st TokenStore, now time.Time, deviceID string, ttl time.Duration) (Token, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return Token{}, fmt.Errorf("enrolment token ttl %v: must be above 0 and at most %v", ttl, MaxTokenTTL)
	}
	b := make([]byte, 20)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	val := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	now = now.UTC()
	t := store.EnrolmentToken{TokenHash: HashToken(val), DeviceID: deviceID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := st.CreateEnrolmentToken(ctx, t); err != nil {
		return Token{}, fmt.Errorf("new enrolment token: %w", err)
	}
	return Token{DeviceID: deviceID, Value: val, ExpiresAt: t.ExpiresAt}, nil
}

// NewToken issues a token on the service's clock; see NewToken.
func (s *Service) NewToken(ctx context.Context, deviceID string, ttl time.Duration) (Token, error) {
	return NewToken(ctx, s.st, s.clk.Now(), deviceID, ttl)
}

// Enrol exchanges a token and a CSR for a certificate. The CSR is checked
// before the token is used, so a malformed request does not burn it. A
// refused request is a *Refusal (and logged, without the token);
// anything else is a failure to enrol at all.
// It returns the certificate and the CA's, in PEM.
func (s *Service) Enrol(ctx context.Context, deviceID, token string, csrPEM []byte) (certPEM, caPEM []byte, err error) {
	pub, err := pki.ParseDeviceCSR(csrPEM)
	if err != nil {
		code := CodeBadCSR
		if errors.Is(err, pki.ErrKeyNotAllowed) {
			code = CodeKeyNotAllowed
		}
		s.log.Warn("device enrolment refused", "device_id", deviceID, "reason", code)
		return nil, nil, refuse(code, strings.TrimPrefix(err.Error(), "pki: "))
	}
	now := s.clk.Now()
	t, err := s.st.UseEnrolmentToken(ctx, HashToken(token), deviceID, now)
	if err != nil {
		code := ""
		switch {
		case errors.Is(err, store.ErrNotFound):
			code = CodeTokenInvalid
		case errors.Is(err, store.ErrConflict) && !t.UsedAt.IsZero():
			code = CodeTokenUsed
		case errors.Is(err, store.ErrConflict) && t.DeviceID != deviceID:
			code = CodeTokenInvalid
		case errors.Is(err, store.ErrConflict):
			code = CodeTokenExpired
		default:
			return nil, nil, fmt.Errorf("enrol device %s: %w", deviceID, err)
		}
		// A used or another device's token is worth a security look.
		s.log.Warn("device enrolment refused", "device_id", deviceID, "reason", code, "token_device_id", t.DeviceID)
		return nil, nil, refuse(code, "enrolment token refused")
	}
	d, err := s.st.GetDevice(ctx, deviceID)
	if err != nil {
		return nil, nil, fmt.Errorf("enrol device %s: %w", deviceID, err)
	}
	if !d.DisabledAt.IsZero() && !d.DisabledAt.After(now) {
		s.log.Warn("device enrolment refused", "device_id", deviceID, "reason", "device_disabled")
		return nil, nil, refuse(CodeTokenInvalid, "enrolment token refused")
	}
	der, err := s.ca.IssueDevice(deviceID, pub, now, s.cfg.CertValidity)
	if err != nil {
		return nil, nil, fmt.Errorf("enrol device %s: %w", deviceID, err)
	}
	fp := pki.Fingerprint(der)
	if err := s.st.SetDeviceCertFingerprint(ctx, deviceID, fp); err != nil {
		return nil, nil, fmt.Errorf("enrol device %s: %w", deviceID, err)
	}
	s.log.Info("device enrolled", "device_id", deviceID, "cert_fingerprint", fp)
	return pki.PEMCert(der), s.ca.CertPEM(), nil
}
