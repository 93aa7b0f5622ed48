package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/internal/store"
)

// CreateEnrolmentToken stores a device enrolment token; see store.EnrolStore.
// The device is checked in the same statement (no foreign key).
func (s *Store) CreateEnrolmentToken(ctx context.Context, t store.EnrolmentToken) error {
	if len(t.TokenHash) == 0 {
		return fmt.Errorf("create enrolment token of %s: empty hash", t.DeviceID)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO enrolment_tokens (token_hash, device_id, created_at, expires_at, used_at)
		SELECT $1, id, $2, $3, $4 FROM devices WHERE id = $5`,
		t.TokenHash, epochNS(orNow(t.CreatedAt)), epochNS(t.ExpiresAt), epochNS(t.UsedAt), t.DeviceID)
	if err != nil {
		return fmt.Errorf("create enrolment token of %s: %w", t.DeviceID, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("create enrolment token of %s: %w", t.DeviceID, store.ErrNotFound)
	}
	return nil
}

// UseEnrolmentToken marks a token used in one conditional UPDATE; see
// store.EnrolStore.
func (s *Store) UseEnrolmentToken(ctx context.Context, tokenHash []byte, deviceID string, at time.Time) (store.EnrolmentToken, error) {
	t, err := scanEnrolmentToken(s.pool.QueryRow(ctx, `UPDATE enrolment_tokens SET used_at = $1
		WHERE token_hash = $2 AND device_id = $3 AND used_at = 0 AND expires_at > $1
		RETURNING token_hash, device_id, created_at, expires_at, used_at`, epochNS(orNow(at)), tokenHash, deviceID))
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.EnrolmentToken{}, fmt.Errorf("use enrolment token: %w", err)
	}
	t, err = scanEnrolmentToken(s.pool.QueryRow(ctx, `SELECT token_hash, device_id, created_at, expires_at, used_at
		FROM enrolment_tokens WHERE token_hash = $1`, tokenHash))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.EnrolmentToken{}, fmt.Errorf("use enrolment token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.EnrolmentToken{}, fmt.Errorf("use enrolment token: %w", err)
	}
	return t, fmt.Errorf("use enrolment token: %w", store.ErrConflict)
}

func scanEnrolmentToken(row pgx.Row) (store.EnrolmentToken, error) {
	var t store.EnrolmentToken
	var created, expires, used int64
	if err := row.Scan(&t.TokenHash, &t.DeviceID, &created, &expires, &used); err != nil {
		return store.EnrolmentToken{}, err
	}
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromEpochNS(created), fromEpochNS(expires), fromEpochNS(used)
	return t, nil
}

// SetDeviceCertFingerprint records a device's client certificate.
func (s *Store) SetDeviceCertFingerprint(ctx context.Context, deviceID, fingerprint string) error {
	return s.updateDevice(ctx, "set device certificate", deviceID, `UPDATE devices SET cert_fingerprint = $1 WHERE id = $2`,
		fingerprint, deviceID)
}
