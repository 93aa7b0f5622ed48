package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"vigil/internal/store"
)

// SetDeviceIMEI registers a tracker's IMEI for a device; see
// store.TrackerStore.
func (s *Store) SetDeviceIMEI(ctx context.Context, deviceID, imei string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("set IMEI of %s: %w", deviceID, err)
	}
	defer tx.Rollback(ctx)
	var one int
	if err := tx.QueryRow(ctx, `SELECT 1 FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("set IMEI of %s: %w", deviceID, store.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("set IMEI of %s: %w", deviceID, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM device_imeis WHERE device_id = $1`, deviceID); err != nil {
		return fmt.Errorf("set IMEI of %s: %w", deviceID, err)
	}
	if imei != "" {
		if _, err := tx.Exec(ctx, `INSERT INTO device_imeis (imei, device_id) VALUES ($1, $2)`, imei, deviceID); err != nil {
			return fmt.Errorf("set IMEI of %s: %w", deviceID, classify(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("set IMEI of %s: %w", deviceID, err)
	}
	return nil
}

// DeviceIMEI reads a device's IMEI; see store.TrackerStore.
func (s *Store) DeviceIMEI(ctx context.Context, deviceID string) (string, error) {
	var imei string
	err := s.pool.QueryRow(ctx, `SELECT imei FROM device_imeis WHERE device_id = $1`, deviceID).Scan(&imei)
	if errors.Is(err, pgx.ErrNoRows) {
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
	err := s.pool.QueryRow(ctx, `SELECT device_id FROM device_imeis WHERE imei = $1`, imei).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Device{}, fmt.Errorf("device by IMEI: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("device by IMEI: %w", err)
	}
	return s.GetDevice(ctx, id)
}
