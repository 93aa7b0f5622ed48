package store

import (
	"context"
	"time"
)

// EnrolmentToken is a single-use, short-lived device enrolment token,
// stored as SHA-256 of the token (security requirement 3): whoever holds
// the token may have Vigil's CA sign one client certificate for DeviceID.
type EnrolmentToken struct {
	TokenHash []byte
	DeviceID  string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until used
}

// EnrolStore keeps enrolment tokens and the fingerprint of each device's
// client certificate.
type EnrolStore interface {
	// CreateEnrolmentToken stores a token; an unknown device is
	// ErrNotFound, a hash already stored ErrConflict.
	CreateEnrolmentToken(ctx context.Context, t EnrolmentToken) error
	// UseEnrolmentToken marks the token with tokenHash used at at, in one
	// conditional write, when it is bound to deviceID, unused and expires
	// after at, and returns it. Otherwise nothing changes: ErrNotFound
	// when no token has that hash, and ErrConflict with the stored token
	// (so the caller can say why) when it is used, expired or bound to
	// another device.
	UseEnrolmentToken(ctx context.Context, tokenHash []byte, deviceID string, at time.Time) (EnrolmentToken, error)
	// SetDeviceCertFingerprint records the SHA-256 (hex) of a device's
	// current client certificate; unknown device: ErrNotFound.
	SetDeviceCertFingerprint(ctx context.Context, deviceID, fingerprint string) error
}
