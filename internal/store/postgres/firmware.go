package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/internal/store"
)

// nullTime is NULL for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// PutFirmwareUpload stores a verified release; see store.FirmwareStore.
func (s *Store) PutFirmwareUpload(ctx context.Context, u store.FirmwareUpload) error {
	at := orNow(u.At)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, r := range u.Roots {
			var body []byte
			err := tx.QueryRow(ctx, `SELECT body FROM firmware_roots WHERE repo = $1 AND version = $2`, r.Repo, r.Version).Scan(&body)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				if _, err := tx.Exec(ctx, `INSERT INTO firmware_roots (repo, version, body, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)`,
					r.Repo, r.Version, r.Body, nullTime(r.Expires), at); err != nil {
					return fmt.Errorf("root %d: %w", r.Version, classify(err))
				}
			case err != nil:
				return fmt.Errorf("root %d: %w", r.Version, err)
			case string(body) != string(r.Body):
				return fmt.Errorf("root %d: another root of this version is stored: %w", r.Version, store.ErrConflict)
			}
		}
		t := u.Targets
		var cur int64
		err := tx.QueryRow(ctx, `SELECT version FROM firmware_meta WHERE repo = $1 AND role = 'targets' FOR UPDATE`, t.Repo).Scan(&cur)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("targets: %w", err)
		}
		if err == nil && t.Version <= cur {
			return fmt.Errorf("targets %d: version %d stored: %w", t.Version, cur, store.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO firmware_meta (repo, role, version, body, expires_at, covers, updated_at) VALUES ($1, 'targets', $2, $3, $4, $5, $6)
			ON CONFLICT (repo, role) DO UPDATE SET version = excluded.version, body = excluded.body, expires_at = excluded.expires_at,
			covers = excluded.covers, updated_at = excluded.updated_at`, t.Repo, t.Version, t.Body, nullTime(t.Expires), t.Covers, at); err != nil {
			return fmt.Errorf("targets: %w", classify(err))
		}
		for _, im := range u.Images {
			var sum string
			err := tx.QueryRow(ctx, `SELECT sha256 FROM firmware_images WHERE name = $1`, im.Name).Scan(&sum)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				if _, err := tx.Exec(ctx, `INSERT INTO firmware_images (name, hardware, version, known_problem, length, sha256, targets_version, bytes, created_at)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, im.Name, im.Hardware, im.Version, im.KnownProblem, im.Length, im.SHA256, t.Version, im.Bytes, at); err != nil {
					return fmt.Errorf("image %s: %w", im.Name, classify(err))
				}
			case err != nil:
				return fmt.Errorf("image %s: %w", im.Name, err)
			case sum != im.SHA256:
				return fmt.Errorf("image %s: stored with other bytes: %w", im.Name, store.ErrConflict)
			default:
				if _, err := tx.Exec(ctx, `UPDATE firmware_images SET known_problem = $1, targets_version = $2 WHERE name = $3`,
					im.KnownProblem, t.Version, im.Name); err != nil {
					return fmt.Errorf("image %s: %w", im.Name, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put firmware upload: %w", classify(err))
	}
	return nil
}

// ListFirmwareRoots lists a repository's roots; see store.FirmwareStore.
func (s *Store) ListFirmwareRoots(ctx context.Context, repo string) ([]store.FirmwareMeta, error) {
	rows, err := s.pool.Query(ctx, `SELECT version, body, expires_at, created_at FROM firmware_roots WHERE repo = $1 ORDER BY version`, repo)
	if err != nil {
		return nil, fmt.Errorf("list firmware roots: %w", err)
	}
	defer rows.Close()
	var out []store.FirmwareMeta
	for rows.Next() {
		m := store.FirmwareMeta{Repo: repo, Role: "root"}
		var exp *time.Time
		if err := rows.Scan(&m.Version, &m.Body, &exp, &m.UpdatedAt); err != nil {
			return nil, fmt.Errorf("list firmware roots: %w", err)
		}
		m.Expires, m.UpdatedAt = fromNull(exp), m.UpdatedAt.UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list firmware roots: %w", err)
	}
	return out, nil
}

// PutFirmwareRoot stores a root version; see store.FirmwareStore.
func (s *Store) PutFirmwareRoot(ctx context.Context, m store.FirmwareMeta) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO firmware_roots (repo, version, body, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (repo, version) DO NOTHING`, m.Repo, m.Version, m.Body, nullTime(m.Expires), orNow(m.UpdatedAt)); err != nil {
		return fmt.Errorf("put firmware root %s/%d: %w", m.Repo, m.Version, classify(err))
	}
	return nil
}

// GetFirmwareMeta reads a repository's current role; see
// store.FirmwareStore.
func (s *Store) GetFirmwareMeta(ctx context.Context, repo, role string) (store.FirmwareMeta, error) {
	m := store.FirmwareMeta{Repo: repo, Role: role}
	var exp *time.Time
	err := s.pool.QueryRow(ctx, `SELECT version, body, expires_at, covers, updated_at FROM firmware_meta WHERE repo = $1 AND role = $2`, repo, role).
		Scan(&m.Version, &m.Body, &exp, &m.Covers, &m.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("get firmware %s %s: %w", repo, role, store.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("get firmware %s %s: %w", repo, role, err)
	}
	m.Expires, m.UpdatedAt = fromNull(exp), m.UpdatedAt.UTC()
	return m, nil
}

// PutFirmwareMetas replaces server-signed metadata; see
// store.FirmwareStore.
func (s *Store) PutFirmwareMetas(ctx context.Context, ms []store.FirmwareMeta) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, m := range ms {
			if _, err := tx.Exec(ctx, `INSERT INTO firmware_meta (repo, role, version, body, expires_at, covers, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (repo, role) DO UPDATE SET version = excluded.version, body = excluded.body, expires_at = excluded.expires_at,
				covers = excluded.covers, updated_at = excluded.updated_at`,
				m.Repo, m.Role, m.Version, m.Body, nullTime(m.Expires), m.Covers, orNow(m.UpdatedAt)); err != nil {
				return fmt.Errorf("%s %s: %w", m.Repo, m.Role, classify(err))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put firmware metadata: %w", err)
	}
	return nil
}

const firmwareImageCols = `name, hardware, version, known_problem, length, sha256, targets_version, created_at`

func scanFirmwareImage(r pgx.Row, extra ...any) (store.FirmwareImage, error) {
	var im store.FirmwareImage
	err := r.Scan(append([]any{&im.Name, &im.Hardware, &im.Version, &im.KnownProblem, &im.Length, &im.SHA256, &im.TargetsVersion, &im.CreatedAt}, extra...)...)
	im.CreatedAt = im.CreatedAt.UTC()
	return im, err
}

// ListFirmwareImages lists every image without bytes; see
// store.FirmwareStore.
func (s *Store) ListFirmwareImages(ctx context.Context) ([]store.FirmwareImage, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+firmwareImageCols+` FROM firmware_images ORDER BY name`)
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
	im, err := scanFirmwareImage(s.pool.QueryRow(ctx, `SELECT `+firmwareImageCols+`, bytes FROM firmware_images WHERE name = $1`, name), &b)
	if errors.Is(err, pgx.ErrNoRows) {
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
	devs := r.Devices
	if devs == nil {
		devs = []string{}
	}
	dj, err := json.Marshal(devs)
	if err != nil {
		return fmt.Errorf("create rollout %s: %w", r.ID, err)
	}
	at := orNow(r.CreatedAt)
	if _, err := s.pool.Exec(ctx, `INSERT INTO firmware_rollouts (id, org_id, name, image, devices, percent, paused, paused_reason,
		pause_failures, pause_percent, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)`,
		r.ID, r.OrgID, r.Name, r.Image, string(dj), r.Percent, r.Paused, r.PausedReason, r.PauseFailures, r.PausePercent, r.CreatedBy, at); err != nil {
		return fmt.Errorf("create rollout %s: %w", r.ID, classify(err))
	}
	return nil
}

const rolloutSelect = `SELECT r.id, r.org_id, r.name, r.image, r.devices, r.percent, r.paused, r.paused_reason, r.pause_failures,
	r.pause_percent, r.created_by, r.created_at, r.updated_at,
	(SELECT count(*) FROM firmware_rollout_devices d WHERE d.rollout_id = r.id AND d.state = 'installed'),
	(SELECT count(*) FROM firmware_rollout_devices d WHERE d.rollout_id = r.id AND d.state = 'failed')
	FROM firmware_rollouts r`

func scanRollout(row pgx.Row) (store.FirmwareRollout, error) {
	var r store.FirmwareRollout
	var devs string
	var installed, failed int64
	if err := row.Scan(&r.ID, &r.OrgID, &r.Name, &r.Image, &devs, &r.Percent, &r.Paused, &r.PausedReason, &r.PauseFailures,
		&r.PausePercent, &r.CreatedBy, &r.CreatedAt, &r.UpdatedAt, &installed, &failed); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(devs), &r.Devices); err != nil {
		return r, err
	}
	if len(r.Devices) == 0 {
		r.Devices = nil
	}
	r.Installed, r.Failed = int(installed), int(failed)
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return r, nil
}

// GetFirmwareRollout reads a rollout; see store.FirmwareStore.
func (s *Store) GetFirmwareRollout(ctx context.Context, id string) (store.FirmwareRollout, error) {
	r, err := scanRollout(s.pool.QueryRow(ctx, rolloutSelect+` WHERE r.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := s.pool.Query(ctx, rolloutSelect+` WHERE $1 = '' OR r.org_id = $1 ORDER BY r.created_at DESC, r.id DESC`, orgID)
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
	return s.execOne(ctx, "update rollout "+r.ID, `UPDATE firmware_rollouts SET percent = $1, paused = $2, paused_reason = $3, updated_at = $4 WHERE id = $5`,
		r.Percent, r.Paused, r.PausedReason, orNow(r.UpdatedAt), r.ID)
}

const firmwareStatusSelect = `SELECT device_id, org_id, version, state, error, refusal, rollout_id, checked_at, version_since, problem_reported_at FROM firmware_devices`

func scanFirmwareStatus(row pgx.Row) (store.FirmwareDeviceStatus, error) {
	var st store.FirmwareDeviceStatus
	var problem *time.Time
	if err := row.Scan(&st.DeviceID, &st.OrgID, &st.Version, &st.State, &st.Error, &st.Refusal, &st.RolloutID, &st.CheckedAt, &st.VersionSince, &problem); err != nil {
		return st, err
	}
	st.CheckedAt, st.VersionSince, st.ProblemReportedAt = st.CheckedAt.UTC(), st.VersionSince.UTC(), fromNull(problem)
	return st, nil
}

// RecordFirmwareStatus stores a device's report; see store.FirmwareStore.
func (s *Store) RecordFirmwareStatus(ctx context.Context, st store.FirmwareDeviceStatus) (store.FirmwareDeviceStatus, error) {
	var prev store.FirmwareDeviceStatus
	at := orNow(st.CheckedAt)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		prev, err = scanFirmwareStatus(tx.QueryRow(ctx, firmwareStatusSelect+` WHERE device_id = $1 FOR UPDATE`, st.DeviceID))
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		since, problem := at, (*time.Time)(nil)
		if err == nil && prev.Version == st.Version {
			since, problem = prev.VersionSince, nullTime(prev.ProblemReportedAt)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO firmware_devices (device_id, org_id, version, state, error, refusal, rollout_id, checked_at,
			version_since, problem_reported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (device_id) DO UPDATE SET org_id = excluded.org_id, version = excluded.version, state = excluded.state, error = excluded.error,
			refusal = excluded.refusal, rollout_id = excluded.rollout_id, checked_at = excluded.checked_at, version_since = excluded.version_since,
			problem_reported_at = excluded.problem_reported_at`,
			st.DeviceID, st.OrgID, st.Version, st.State, st.Error, st.Refusal, st.RolloutID, at, since, problem); err != nil {
			return classify(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE devices SET firmware = $1 WHERE id = $2`, st.Version, st.DeviceID); err != nil {
			return err
		}
		if st.RolloutID != "" && (st.State == "installed" || st.State == "failed") {
			if _, err := tx.Exec(ctx, `INSERT INTO firmware_rollout_devices (rollout_id, device_id, state, at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (rollout_id, device_id) DO UPDATE SET state = excluded.state, at = excluded.at`,
				st.RolloutID, st.DeviceID, st.State, at); err != nil {
				return classify(err)
			}
		}
		return nil
	})
	if err != nil {
		return prev, fmt.Errorf("record firmware status of %s: %w", st.DeviceID, err)
	}
	return prev, nil
}

// ListFirmwareStatus lists devices' reports; see store.FirmwareStore.
func (s *Store) ListFirmwareStatus(ctx context.Context, orgID string) ([]store.FirmwareDeviceStatus, error) {
	rows, err := s.pool.Query(ctx, firmwareStatusSelect+` WHERE $1 = '' OR org_id = $1 ORDER BY device_id`, orgID)
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
	return s.execOne(ctx, "mark firmware problem of "+deviceID, `UPDATE firmware_devices SET problem_reported_at = $1 WHERE device_id = $2`, orNow(at), deviceID)
}
