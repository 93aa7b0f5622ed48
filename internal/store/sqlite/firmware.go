package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"vigil/internal/store"
)

// PutFirmwareUpload stores a verified release; see store.FirmwareStore.
func (s *Store) PutFirmwareUpload(ctx context.Context, u store.FirmwareUpload) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put firmware upload: %w", err)
	}
	defer tx.Rollback()
	at := orNow(u.At).UnixNano()
	for _, r := range u.Roots {
		var body []byte
		err := tx.QueryRowContext(ctx, `SELECT body FROM firmware_roots WHERE repo = ? AND version = ?`, r.Repo, r.Version).Scan(&body)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, `INSERT INTO firmware_roots (repo, version, body, expires_at, created_at) VALUES (?, ?, ?, ?, ?)`,
				r.Repo, r.Version, r.Body, nanos(r.Expires), at); err != nil {
				return fmt.Errorf("put firmware root %d: %w", r.Version, classify(err))
			}
		case err != nil:
			return fmt.Errorf("put firmware root %d: %w", r.Version, err)
		case string(body) != string(r.Body):
			return fmt.Errorf("put firmware root %d: another root of this version is stored: %w", r.Version, store.ErrConflict)
		}
	}
	t := u.Targets
	var cur int64
	err = tx.QueryRowContext(ctx, `SELECT version FROM firmware_meta WHERE repo = ? AND role = 'targets'`, t.Repo).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("put firmware targets: %w", err)
	}
	if err == nil && t.Version <= cur {
		return fmt.Errorf("put firmware targets %d: version %d stored: %w", t.Version, cur, store.ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO firmware_meta (repo, role, version, body, expires_at, covers, updated_at) VALUES (?, 'targets', ?, ?, ?, ?, ?)
		ON CONFLICT (repo, role) DO UPDATE SET version = excluded.version, body = excluded.body, expires_at = excluded.expires_at,
		covers = excluded.covers, updated_at = excluded.updated_at`, t.Repo, t.Version, t.Body, nanos(t.Expires), t.Covers, at); err != nil {
		return fmt.Errorf("put firmware targets: %w", classify(err))
	}
	for _, im := range u.Images {
		var sum string
		err := tx.QueryRowContext(ctx, `SELECT sha256 FROM firmware_images WHERE name = ?`, im.Name).Scan(&sum)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, `INSERT INTO firmware_images (name, hardware, version, known_problem, length, sha256, targets_version, bytes, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, im.Name, im.Hardware, im.Version, im.KnownProblem, im.Length, im.SHA256, t.Version, im.Bytes, at); err != nil {
				return fmt.Errorf("put firmware image %s: %w", im.Name, classify(err))
			}
		case err != nil:
			return fmt.Errorf("put firmware image %s: %w", im.Name, err)
		case sum != im.SHA256:
			return fmt.Errorf("put firmware image %s: stored with other bytes: %w", im.Name, store.ErrConflict)
		default:
			if _, err := tx.ExecContext(ctx, `UPDATE firmware_images SET known_problem = ?, targets_version = ? WHERE name = ?`,
				im.KnownProblem, t.Version, im.Name); err != nil {
				return fmt.Errorf("put firmware image %s: %w", im.Name, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put firmware upload: commit: %w", err)
	}
	return nil
}

// ListFirmwareRoots lists a repository's roots; see store.FirmwareStore.
func (s *Store) ListFirmwareRoots(ctx context.Context, repo string) ([]store.FirmwareMeta, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT version, body, expires_at, created_at FROM firmware_roots WHERE repo = ? ORDER BY version`, repo)
	if err != nil {
		return nil, fmt.Errorf("list firmware roots: %w", err)
	}
	defer rows.Close()
	var out []store.FirmwareMeta
	for rows.Next() {
		m := store.FirmwareMeta{Repo: repo, Role: "root"}
		var exp sql.NullInt64
		var at int64
		if err := rows.Scan(&m.Version, &m.Body, &exp, &at); err != nil {
			return nil, fmt.Errorf("list firmware roots: %w", err)
		}
		m.Expires, m.UpdatedAt = fromNanos(exp), time.Unix(0, at).UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list firmware roots: %w", err)
	}
	return out, nil
}

// PutFirmwareRoot stores a root version; see store.FirmwareStore.
func (s *Store) PutFirmwareRoot(ctx context.Context, m store.FirmwareMeta) error {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO firmware_roots (repo, version, body, expires_at, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (repo, version) DO NOTHING`, m.Repo, m.Version, m.Body, nanos(m.Expires), orNow(m.UpdatedAt).UnixNano()); err != nil {
		return fmt.Errorf("put firmware root %s/%d: %w", m.Repo, m.Version, classify(err))
	}
	return nil
}

// GetFirmwareMeta reads a repository's current role; see
// store.FirmwareStore.
func (s *Store) GetFirmwareMeta(ctx context.Context, repo, role string) (store.FirmwareMeta, error) {
	m := store.FirmwareMeta{Repo: repo, Role: role}
	var exp sql.NullInt64
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT version, body, expires_at, covers, updated_at FROM firmware_meta WHERE repo = ? AND role = ?`, repo, role).
		Scan(&m.Version, &m.Body, &exp, &m.Covers, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("get firmware %s %s: %w", repo, role, store.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("get firmware %s %s: %w", repo, role, err)
	}
	m.Expires, m.UpdatedAt = fromNanos(exp), time.Unix(0, at).UTC()
	return m, nil
}

// PutFirmwareMetas replaces server-signed metadata; see
// store.FirmwareStore.
func (s *Store) PutFirmwareMetas(ctx context.Context, ms []store.FirmwareMeta) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put firmware metadata: %w", err)
	}
	defer tx.Rollback()
	for _, m := range ms {
		if _, err := tx.ExecContext(ctx, `INSERT INTO firmware_meta (repo, role, version, body, expires_at, covers, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (repo, role) DO UPDATE SET version = excluded.version, body = excluded.body, expires_at = excluded.expires_at,
			covers = excluded.covers, updated_at = excluded.updated_at`,
			m.Repo, m.Role, m.Version, m.Body, nanos(m.Expires), m.Covers, orNow(m.UpdatedAt).UnixNano()); err != nil {
			return fmt.Errorf("put firmware %s %s: %w", m.Repo, m.Role, classify(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put firmware metadata: commit: %w", err)
	}
	return nil
}

const firmwareImageCols = `name, hardware, version, known_problem, length, sha256, targets_version, created_at`

func scanFirmwareImage(sc scanner, extra ...any) (store.FirmwareImage, error) {
	var im store.FirmwareImage
	var at int64
	err := sc.Scan(append([]any{&im.Name, &im.Hardware, &im.Version, &im.KnownProblem, &im.Length, &im.SHA256, &im.TargetsVersion, &at}, extra...)...)
	im.CreatedAt = time.Unix(0, at).UTC()
	return im, err
}

// ListFirmwareImages lists every image without bytes; see
// store.FirmwareStore.
func (s *Store) ListFirmwareImages(ctx context.Context) ([]store.FirmwareImage, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+firmwareImageCols+` FROM firmware_images ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list firmware images: %w", err)
	}
	defer rows.Close()
	var out []store.FirmwareImage
	for rows.Next() {
		im, err := scanFirmwareImage(rows)
		if err != nil {
			return nil, fmt.Errorf("list firmware images: %w", err)
		}
		out = append(out, im)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list firmware images: %w", err)
	}
	return out, nil
}

// GetFirmwareImage reads one image with its bytes; see
// store.FirmwareStore.
func (s *Store) GetFirmwareImage(ctx context.Context, name string) (store.FirmwareImage, error) {
	var b []byte
	im, err := scanFirmwareImage(s.r.QueryRowContext(ctx, `SELECT `+firmwareImageCols+`, bytes FROM firmware_images WHERE name = ?`, name), &b)
	if errors.Is(err, sql.ErrNoRows) {
		return im, fmt.Errorf("get firmware image %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return im, fmt.Errorf("get firmware image %s: %w", name, err)
	}
	im.Bytes = b
	return im, nil
}

// CreateFirmwareRollout inserts a rollout; see store.FirmwareStore.
func (s *Store) CreateFirmwareRollout(ctx context.Context, r store.FirmwareRollout) error {
	devs, err := json.Marshal(nonNil(r.Devices))
	if err != nil {
		return fmt.Errorf("create rollout %s: %w", r.ID, err)
	}
	at := orNow(r.CreatedAt).UnixNano()
	if _, err := s.w.ExecContext(ctx, `INSERT INTO firmware_rollouts (id, org_id, name, image, devices, percent, paused, paused_reason,
		pause_failures, pause_percent, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.OrgID, r.Name, r.Image, string(devs), r.Percent, r.Paused, r.PausedReason, r.PauseFailures, r.PausePercent, r.CreatedBy, at, at); err != nil {
		return fmt.Errorf("create rollout %s: %w", r.ID, classify(err))
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const rolloutSelect = `SELECT r.id, r.org_id, r.name, r.image, r.devices, r.percent, r.paused, r.paused_reason, r.pause_failures,
	r.pause_percent, r.created_by, r.created_at, r.updated_at,
	(SELECT count(*) FROM firmware_rollout_devices d WHERE d.rollout_id = r.id AND d.state = 'installed'),
	(SELECT count(*) FROM firmware_rollout_devices d WHERE d.rollout_id = r.id AND d.state = 'failed')
	FROM firmware_rollouts r`

func scanRollout(sc scanner) (store.FirmwareRollout, error) {
	var r store.FirmwareRollout
	var devs string
	var created, updated int64
	if err := sc.Scan(&r.ID, &r.OrgID, &r.Name, &r.Image, &devs, &r.Percent, &r.Paused, &r.PausedReason, &r.PauseFailures,
		&r.PausePercent, &r.CreatedBy, &created, &updated, &r.Installed, &r.Failed); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(devs), &r.Devices); err != nil {
		return r, err
	}
	if len(r.Devices) == 0 {
		r.Devices = nil
	}
	r.CreatedAt, r.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return r, nil
}

// GetFirmwareRollout reads a rollout; see store.FirmwareStore.
func (s *Store) GetFirmwareRollout(ctx context.Context, id string) (store.FirmwareRollout, error) {
	r, err := scanRollout(s.r.QueryRowContext(ctx, rolloutSelect+` WHERE r.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("get rollout %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("get rollout %s: %w", id, err)
	}
	return r, nil
}

// ListFirmwareRollouts lists rollouts, newest first; see
// store.FirmwareStore.
func (s *Store) ListFirmwareRollouts(ctx context.Context, orgID string) ([]store.FirmwareRollout, error) {
	rows, err := s.r.QueryContext(ctx, rolloutSelect+` WHERE ? = '' OR r.org_id = ? ORDER BY r.created_at DESC, r.id DESC`, orgID, orgID)
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	defer rows.Close()
	var out []store.FirmwareRollout
	for rows.Next() {
		r, err := scanRollout(rows)
		if err != nil {
			return nil, fmt.Errorf("list rollouts: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return out, nil
}

// UpdateFirmwareRollout sets percent and pause; see store.FirmwareStore.
func (s *Store) UpdateFirmwareRollout(ctx context.Context, r store.FirmwareRollout) error {
	n, err := s.execCount(ctx, "update rollout "+r.ID, `UPDATE firmware_rollouts SET percent = ?, paused = ?, paused_reason = ?, updated_at = ? WHERE id = ?`,
		r.Percent, r.Paused, r.PausedReason, orNow(r.UpdatedAt).UnixNano(), r.ID)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("update rollout %s: %w", r.ID, store.ErrNotFound)
	}
	return nil
}

// RecordFirmwareStatus stores a device's report; see store.FirmwareStore.
func (s *Store) RecordFirmwareStatus(ctx context.Context, st store.FirmwareDeviceStatus) (store.FirmwareDeviceStatus, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.FirmwareDeviceStatus{}, fmt.Errorf("record firmware status: %w", err)
	}
	defer tx.Rollback()
	prev, err := scanFirmwareStatus(tx.QueryRowContext(ctx, firmwareStatusSelect+` WHERE device_id = ?`, st.DeviceID))
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return prev, fmt.Errorf("record firmware status of %s: %w", st.DeviceID, err)
	}
	at := orNow(st.CheckedAt)
	since, problem := at, sql.NullInt64{}
	if err == nil && prev.Version == st.Version {
		since, problem = prev.VersionSince, nanos(prev.ProblemReportedAt)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO firmware_devices (device_id, org_id, version, state, error, refusal, rollout_id, checked_at,
		version_since, problem_reported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET org_id = excluded.org_id, version = excluded.version, state = excluded.state, error = excluded.error,
		refusal = excluded.refusal, rollout_id = excluded.rollout_id, checked_at = excluded.checked_at, version_since = excluded.version_since,
		problem_reported_at = excluded.problem_reported_at`,
		st.DeviceID, st.OrgID, st.Version, st.State, st.Error, st.Refusal, st.RolloutID, at.UnixNano(), since.UnixNano(), problem); err != nil {
		return prev, fmt.Errorf("record firmware status of %s: %w", st.DeviceID, classify(err))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET firmware = ? WHERE id = ?`, st.Version, st.DeviceID); err != nil {
		return prev, fmt.Errorf("record firmware status of %s: %w", st.DeviceID, err)
	}
	if st.RolloutID != "" && (st.State == "installed" || st.State == "failed") {
		if _, err := tx.ExecContext(ctx, `INSERT INTO firmware_rollout_devices (rollout_id, device_id, state, at) VALUES (?, ?, ?, ?)
			ON CONFLICT (rollout_id, device_id) DO UPDATE SET state = excluded.state, at = excluded.at`,
			st.RolloutID, st.DeviceID, st.State, at.UnixNano()); err != nil {
			return prev, fmt.Errorf("record firmware status of %s: %w", st.DeviceID, classify(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return prev, fmt.Errorf("record firmware status: commit: %w", err)
	}
	return prev, nil
}

const firmwareStatusSelect = `SELECT device_id, org_id, version, state, error, refusal, rollout_id, checked_at, version_since, problem_reported_at FROM firmware_devices`

func scanFirmwareStatus(sc scanner) (store.FirmwareDeviceStatus, error) {
	var st store.FirmwareDeviceStatus
	var checked, since int64
	var problem sql.NullInt64
	if err := sc.Scan(&st.DeviceID, &st.OrgID, &st.Version, &st.State, &st.Error, &st.Refusal, &st.RolloutID, &checked, &since, &problem); err != nil {
		return st, err
	}
	st.CheckedAt, st.VersionSince, st.ProblemReportedAt = time.Unix(0, checked).UTC(), time.Unix(0, since).UTC(), fromNanos(problem)
	return st, nil
}

// ListFirmwareStatus lists devices' reports; see store.FirmwareStore.
func (s *Store) ListFirmwareStatus(ctx context.Context, orgID string) ([]store.FirmwareDeviceStatus, error) {
	rows, err := s.r.QueryContext(ctx, firmwareStatusSelect+` WHERE ? = '' OR org_id = ? ORDER BY device_id`, orgID, orgID)
	if err != nil {
		return nil, fmt.Errorf("list firmware status: %w", err)
	}
	defer rows.Close()
	var out []store.FirmwareDeviceStatus
	for rows.Next() {
		st, err := scanFirmwareStatus(rows)
		if err != nil {
			return nil, fmt.Errorf("list firmware status: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list firmware status: %w", err)
	}
	return out, nil
}

// MarkFirmwareProblemReported records a raised known problem; see
// store.FirmwareStore.
func (s *Store) MarkFirmwareProblemReported(ctx context.Context, deviceID string, at time.Time) error {
	n, err := s.execCount(ctx, "mark firmware problem of "+deviceID, `UPDATE firmware_devices SET problem_reported_at = ? WHERE device_id = ?`,
		orNow(at).UnixNano(), deviceID)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("mark firmware problem of %s: %w", deviceID, store.ErrNotFound)
	}
	return nil
}
