package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"vigil/internal/store"
)

// SetDeviceIMEI registers a tracker's IMEI for a device; see
// store.TrackerStore.
func (s *Store) SetDeviceIMEI(ctx context.Context, deviceID, imei string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set IMEI of %s: %w", deviceID, err)
	}
	defer tx.Rollback()
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, deviceID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("set IMEI of %s: %w", deviceID, store.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("set IMEI of %s: %w", deviceID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM device_imeis WHERE device_id = ?`, deviceID); err != nil {
		return fmt.Errorf("set IMEI of %s: %w", deviceID, err)
	}
	if imei != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO device_imeis (imei, device_id) VALUES (?, ?)`, imei, deviceID); err != nil {
			return fmt.Errorf("set IMEI of %s: %w", deviceID, classify(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set IMEI of %s: %w", deviceID, err)
	}
	return nil
}

// DeviceIMEI reads a device's IMEI; see store.TrackerStore.
func (s *Store) DeviceIMEI(ctx context.Context, deviceID string) (string, error) {
	var imei string
	err := s.r.QueryRowContext(ctx, `SELECT imei FROM device_imeis WHERE device_id = ?`, deviceID).Scan(&imei)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("IMEI of %s: %w", deviceID, err)
	}
	return imei, nil
}

// DeviceByIMEI finds the device an IMEI is registered to; see
// store.TrackerStore.
func (s *Store) DeviceByIMEI(ctx context.Context, imei string) (store.Device, error) {
	var id string
	err := s.r.QueryRowContext(ctx, `SELECT device_id FROM device_imeis WHERE imei = ?`, imei).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Device{}, fmt.Errorf("device by IMEI: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("device by IMEI: %w", err)
	}
	return s.GetDevice(ctx, id)
}
