package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"vigil/internal/store"
)

// CreateEnrolmentToken stores a device enrolment token; see store.EnrolStore.
func (s *Store) CreateEnrolmentToken(ctx context.Context, t store.EnrolmentToken) error {
	if len(t.TokenHash) == 0 {
		return fmt.Errorf("create enrolment token of %s: empty hash", t.DeviceID)
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO enrolment_tokens (token_hash, device_id, created_at, expires_at, used_at)
		SELECT ?, id, ?, ?, ? FROM devices WHERE id = ?`,
		t.TokenHash, epochNS(orNow(t.CreatedAt)), epochNS(t.ExpiresAt), epochNS(t.UsedAt), t.DeviceID)
	if err != nil {
		return fmt.Errorf("create enrolment token of %s: %w", t.DeviceID, classify(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create enrolment token of %s: %w", t.DeviceID, err)
	} else if n == 0 {
		return fmt.Errorf("create enrolment token of %s: %w", t.DeviceID, store.ErrNotFound)
	}
	return nil
}

// UseEnrolmentToken marks a token used in one conditional UPDATE; see
// store.EnrolStore.
func (s *Store) UseEnrolmentToken(ctx context.Context, tokenHash []byte, deviceID string, at time.Time) (store.EnrolmentToken, error) {
	now := epochNS(orNow(at))
	t, err := scanEnrolmentToken(s.w.QueryRowContext(ctx, `UPDATE enrolment_tokens SET used_at = ?1
		WHERE token_hash = ?2 AND device_id = ?3 AND used_at = 0 AND expires_at > ?1
		RETURNING token_hash, device_id, created_at, expires_at, used_at`, now, tokenHash, deviceID))
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.EnrolmentToken{}, fmt.Errorf("use enrolment token: %w", err)
	}
	t, err = scanEnrolmentToken(s.w.QueryRowContext(ctx, `SELECT token_hash, device_id, created_at, expires_at, used_at
		FROM enrolment_tokens WHERE token_hash = ?`, tokenHash))
	if errors.Is(err, sql.ErrNoRows) {
		return store.EnrolmentToken{}, fmt.Errorf("use enrolment token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.EnrolmentToken{}, fmt.Errorf("use enrolment token: %w", err)
	}
	return t, fmt.Errorf("use enrolment token: %w", store.ErrConflict)
}

func scanEnrolmentToken(row *sql.Row) (store.EnrolmentToken, error) {
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
	return s.updateDevice(ctx, "set device certificate", deviceID, `UPDATE devices SET cert_fingerprint = ? WHERE id = ?`,
		fingerprint, deviceID)
}
