package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"vigil/internal/store"
)

const dataKeyCols = `id, owner, kek_id, wrapped, created_at, destroyed_at`

func scanDataKey(r pgx.Row) (store.DataKey, error) {
	var k store.DataKey
	var created, destroyed pgtype.Timestamptz
	if err := r.Scan(&k.ID, &k.Owner, &k.KEKID, &k.Wrapped, &created, &destroyed); err != nil {
		return store.DataKey{}, err
	}
	k.CreatedAt, k.DestroyedAt = fromTS(created), fromTS(destroyed)
	return k, nil
}

// CreateDataKey stores a data key unless its owner has one; see
// store.PrivacyStore.
func (s *Store) CreateDataKey(ctx context.Context, k store.DataKey) (store.DataKey, error) {
	if k.ID == "" || k.Owner == "" || len(k.Wrapped) == 0 {
		return store.DataKey{}, fmt.Errorf("create data key: id, owner and wrapped key are required")
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO data_keys (id, owner, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (owner) DO NOTHING`, k.ID, k.Owner, k.KEKID, k.Wrapped, orNow(k.CreatedAt)); err != nil {
		return store.DataKey{}, fmt.Errorf("create data key %s: %w", k.ID, classify(err))
	}
	return s.GetOwnerDataKey(ctx, k.Owner)
}

func (s *Store) getDataKey(ctx context.Context, op, where string, arg any) (store.DataKey, error) {
	k, err := scanDataKey(s.pool.QueryRow(ctx, `SELECT `+dataKeyCols+` FROM data_keys WHERE `+where+` = $1`, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.DataKey{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return store.DataKey{}, fmt.Errorf("%s: %w", op, err)
	}
	return k, nil
}

// GetDataKey returns a data key by id; see store.PrivacyStore.
func (s *Store) GetDataKey(ctx context.Context, id string) (store.DataKey, error) {
	return s.getDataKey(ctx, "get data key "+id, "id", id)
}

// GetOwnerDataKey returns an owner's data key; see store.PrivacyStore.
func (s *Store) GetOwnerDataKey(ctx context.Context, owner string) (store.DataKey, error) {
	return s.getDataKey(ctx, "get data key of "+owner, "owner", owner)
}

// RewrapDataKey replaces a live key's wrapping; see store.PrivacyStore.
func (s *Store) RewrapDataKey(ctx context.Context, id, oldKEKID, newKEKID string, wrapped []byte) (bool, error) {
	n, err := s.execCount(ctx, "rewrap data key "+id, `UPDATE data_keys SET kek_id = $1, wrapped = $2
		WHERE id = $3 AND kek_id = $4 AND wrapped IS NOT NULL`, newKEKID, wrapped, id, oldKEKID)
	return n == 1, err
}

// DestroyDataKey deletes an owner's wrapped key; see store.PrivacyStore.
func (s *Store) DestroyDataKey(ctx context.Context, owner string, at time.Time) (bool, error) {
	at = orNow(at)
	n, err := s.execCount(ctx, "destroy data key of "+owner, `UPDATE data_keys SET wrapped = NULL, destroyed_at = $1
		WHERE owner = $2 AND wrapped IS NOT NULL`, at, owner)
	if err != nil || n == 1 {
		return n == 1, err
	}
	// No live key: leave a tombstone so none is ever made for owner.
	if _, err := s.pool.Exec(ctx, `INSERT INTO data_keys (id, owner, kek_id, wrapped, created_at, destroyed_at)
		VALUES ($1, $2, '', NULL, $3, $3) ON CONFLICT DO NOTHING`, "tomb:"+owner, owner, at); err != nil {
		return false, fmt.Errorf("destroy data key of %s: %w", owner, err)
	}
	return false, nil
}

// CountDataKeysByKEK counts live keys per KEK key; see store.PrivacyStore.
func (s *Store) CountDataKeysByKEK(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT kek_id, count(*) FROM data_keys WHERE wrapped IS NOT NULL GROUP BY kek_id`)
	if err != nil {
		return nil, fmt.Errorf("count data keys: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count data keys: %w", err)
		}
		out[id] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count data keys: %w", err)
	}
	return out, nil
}

// ListLiveDataKeys pages through the live keys; see store.PrivacyStore.
func (s *Store) ListLiveDataKeys(ctx context.Context, after string, limit int) ([]store.DataKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+dataKeyCols+` FROM data_keys WHERE wrapped IS NOT NULL AND id > $1 COLLATE "C"
		ORDER BY id COLLATE "C" LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list data keys: %w", err)
	}
	defer rows.Close()
	var out []store.DataKey
	for rows.Next() {
		k, err := scanDataKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list data keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list data keys: %w", err)
	}
	return out, nil
}

// ErasePerson deletes a person's rows where no legal duty applies; see
// store.PrivacyStore.
func (s *Store) ErasePerson(ctx context.Context, personID string) (store.ErasedRows, error) {
	op := "erase person " + personID
	var out store.ErasedRows
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var notes string
		if err := tx.QueryRow(ctx, `SELECT medical_notes FROM people WHERE id = $1 FOR UPDATE`, personID).Scan(&notes); errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		} else if err != nil {
			return err
		}
		var open int64
		if err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM alerts WHERE person_id = $1 AND state IN ('pending', 'raised', 'acknowledged')) +
			(SELECT count(*) FROM sessions WHERE person_id = $1 AND state = 'active')`, personID).Scan(&open); err != nil {
			return err
		}
		if open > 0 {
			return fmt.Errorf("the person has an open alert or an active session: %w", store.ErrConflict)
		}
		if notes != "" {
			out.MedicalNotes = 1
		}
		steps := []struct {
			n *int
			q string
		}{
			{&out.Positions, `DELETE FROM positions WHERE device_id IN (SELECT id FROM devices WHERE person_id = $1)`},
			{&out.Events, `DELETE FROM events WHERE device_id IN (SELECT id FROM devices WHERE person_id = $1)`},
			{&out.DevicesUnlinked, `UPDATE devices SET person_id = NULL, last_lat = NULL, last_lon = NULL, last_accuracy_m = NULL,
				last_speed = NULL, last_heading = NULL, last_altitude = NULL, last_fix_time = NULL, position_time = NULL
				WHERE person_id = $1`},
			{&out.Contacts, `DELETE FROM contacts WHERE person_id = $1`},
			{&out.CarerLinks, `DELETE FROM carer_links WHERE person_id = $1`},
			{&out.Photos, `DELETE FROM person_photos WHERE person_id = $1`},
			{&out.Sessions, `DELETE FROM sessions WHERE person_id = $1`},
			{&out.BreakGlass, `DELETE FROM break_glass WHERE person_id = $1`},
			{&out.UsersUnlinked, `UPDATE users SET person_id = NULL WHERE person_id = $1`},
			{&out.DeliveriesMasked, `UPDATE deliveries SET target = '' WHERE target <> '' AND alert_id IN (SELECT id FROM alerts WHERE person_id = $1)`},
			{&out.AlertPositions, `UPDATE alerts SET lat = NULL, lon = NULL, accuracy_m = NULL, fix_time = NULL, position_time = NULL
				WHERE person_id = $1 AND lat IS NOT NULL`},
			{&out.PlaintextCleared, `UPDATE alerts SET note = CASE WHEN substr(note, 1, 5) = 'enc1:' THEN note ELSE '' END, detail = CASE WHEN substr(detail, 1, 5) = 'enc1:' THEN detail ELSE '' END, outcome_note = CASE WHEN substr(outcome_note, 1, 5) = 'enc1:' THEN outcome_note ELSE '' END
			WHERE person_id = $1 AND ((note <> '' AND substr(note, 1, 5) <> 'enc1:') OR (detail <> '' AND substr(detail, 1, 5) <> 'enc1:') OR (outcome_note <> '' AND substr(outcome_note, 1, 5) <> 'enc1:'))`},
			{&out.PlaintextCleared, `UPDATE alert_entries SET detail = '' WHERE (detail <> '' AND substr(detail, 1, 5) <> 'enc1:')
			AND alert_id IN (SELECT id FROM alerts WHERE person_id = $1)`},
			{&out.AlertsKept, `UPDATE alerts SET version = version WHERE person_id = $1`},
			{&out.Person, `DELETE FROM people WHERE id = $1`},
		}
		for _, st := range steps {
			tag, err := tx.Exec(ctx, st.q, personID)
			if err != nil {
				return err
			}
			*st.n += int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return store.ErasedRows{}, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// PutErasure records an erasure in the ledger; see store.PrivacyStore.
func (s *Store) PutErasure(ctx context.Context, e store.Erasure) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO erasures (person_id, org_id, erased_at, receipt_id, receipt) VALUES ($1, $2, $3, $4, $5)`,
		e.PersonID, e.OrgID, orNow(e.ErasedAt), e.ReceiptID, e.Receipt); err != nil {
		return fmt.Errorf("record erasure of %s: %w", e.PersonID, classify(err))
	}
	return nil
}

// GetErasure returns a person's erasure; see store.PrivacyStore.
func (s *Store) GetErasure(ctx context.Context, personID string) (store.Erasure, error) {
	e := store.Erasure{PersonID: personID}
	err := s.pool.QueryRow(ctx, `SELECT org_id, erased_at, receipt_id, receipt FROM erasures WHERE person_id = $1`, personID).
		Scan(&e.OrgID, &e.ErasedAt, &e.ReceiptID, &e.Receipt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Erasure{}, fmt.Errorf("get erasure of %s: %w", personID, store.ErrNotFound)
	}
	if err != nil {
		return store.Erasure{}, fmt.Errorf("get erasure of %s: %w", personID, err)
	}
	e.ErasedAt = e.ErasedAt.UTC()
	return e, nil
}

// ListErasures lists the erasure ledger by time; see store.PrivacyStore.
func (s *Store) ListErasures(ctx context.Context) ([]store.Erasure, error) {
	rows, err := s.pool.Query(ctx, `SELECT person_id, org_id, erased_at, receipt_id, receipt FROM erasures ORDER BY erased_at, person_id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list erasures: %w", err)
	}
	defer rows.Close()
	var out []store.Erasure
	for rows.Next() {
		var e store.Erasure
		if err := rows.Scan(&e.PersonID, &e.OrgID, &e.ErasedAt, &e.ReceiptID, &e.Receipt); err != nil {
			return nil, fmt.Errorf("list erasures: %w", err)
		}
		e.ErasedAt = e.ErasedAt.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list erasures: %w", err)
	}
	return out, nil
}

// ListPersonCarers lists the users linked to a person as carers; see
// store.PrivacyStore.
func (s *Store) ListPersonCarers(ctx context.Context, personID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id FROM carer_links WHERE person_id = $1 ORDER BY user_id COLLATE "C"`, personID)
	if err != nil {
		return nil, fmt.Errorf("list carers of %s: %w", personID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list carers of %s: %w", personID, err)
	}
	return ids, nil
}

// ListUnsealed lists values stored before encryption; see
// store.UnsealedStore.
func (s *Store) ListUnsealed(ctx context.Context, f store.PlainField, limit int) ([]store.UnsealedValue, error) {
	q, ok := store.UnsealedQueryOf(f)
	if !ok {
		return nil, fmt.Errorf("list unsealed %s.%s: unknown field", f.Table, f.Column)
	}
	col := "t." + f.Column
	rows, err := s.pool.Query(ctx, `SELECT `+q.RowID+`, coalesce(`+q.Person+`, ''), `+q.Org+`, `+q.Dedup+`, `+col+` FROM `+q.From+`
		WHERE `+col+` <> '' AND substr(`+col+`, 1, $1) <> $2 LIMIT $3`, len(store.SealedPrefix), store.SealedPrefix, limit)
	if err != nil {
		return nil, fmt.Errorf("list unsealed %s.%s: %w", f.Table, f.Column, err)
	}
	defer rows.Close()
	var out []store.UnsealedValue
	for rows.Next() {
		var v store.UnsealedValue
		if err := rows.Scan(&v.RowID, &v.PersonID, &v.OrgID, &v.DedupKey, &v.Value); err != nil {
			return nil, fmt.Errorf("list unsealed %s.%s: %w", f.Table, f.Column, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list unsealed %s.%s: %w", f.Table, f.Column, err)
	}
	return out, nil
}

// ReplaceUnsealed replaces a value stored before encryption; see
// store.UnsealedStore.
func (s *Store) ReplaceUnsealed(ctx context.Context, f store.PlainField, rowID, old, sealed string) (bool, error) {
	q, ok := store.UnsealedQueryOf(f)
	if !ok {
		return false, fmt.Errorf("replace unsealed %s.%s: unknown field", f.Table, f.Column)
	}
	args := []any{sealed}
	where := make([]string, 0, len(q.KeyCols))
	if len(q.KeyCols) == 2 {
		// An alert entry: "<alert id>/<seq>"; the alert id may hold "/".
		i := strings.LastIndex(rowID, "/")
		seq, err := strconv.ParseInt(rowID[i+1:], 10, 64)
		if i < 0 || err != nil {
			return false, fmt.Errorf("replace unsealed %s.%s: bad row id", f.Table, f.Column)
		}
		args = append(args, rowID[:i], seq)
	} else {
		args = append(args, rowID)
	}
	for i, c := range q.KeyCols {
		where = append(where, fmt.Sprintf("%s = $%d", c, i+2))
	}
	args = append(args, old)
	n, err := s.execCount(ctx, "replace unsealed "+f.Table+"."+f.Column, `UPDATE `+f.Table+` SET `+f.Column+` = $1 WHERE `+
		strings.Join(where, " AND ")+fmt.Sprintf(" AND %s = $%d", f.Column, len(args)), args...)
	return n == 1, err
}
