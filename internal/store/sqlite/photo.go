package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"vigil/internal/store"
)

// PutPersonPhoto sets a person's photo; see store.PersonPhotoStore.
func (s *Store) PutPersonPhoto(ctx context.Context, p store.PersonPhoto) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO person_photos (person_id, content_type, bytes, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (person_id) DO UPDATE SET content_type = excluded.content_type, bytes = excluded.bytes,
		updated_at = excluded.updated_at`,
		p.PersonID, p.ContentType, p.Bytes, orNow(p.UpdatedAt).UnixNano())
	if err != nil {
		return fmt.Errorf("put photo of %s: %w", p.PersonID, classify(err))
	}
	return nil
}

// GetPersonPhoto reads a person's photo; see store.PersonPhotoStore.
func (s *Store) GetPersonPhoto(ctx context.Context, personID string) (store.PersonPhoto, error) {
	p := store.PersonPhoto{PersonID: personID}
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT content_type, bytes, updated_at FROM person_photos WHERE person_id = ?`, personID).
		Scan(&p.ContentType, &p.Bytes, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return store.PersonPhoto{}, fmt.Errorf("get photo of %s: %w", personID, store.ErrNotFound)
	}
	if err != nil {
		return store.PersonPhoto{}, fmt.Errorf("get photo of %s: %w", personID, err)
	}
	p.UpdatedAt = time.Unix(0, at).UTC()
	return p, nil
}

// DeletePersonPhoto removes a person's photo; see store.PersonPhotoStore.
func (s *Store) DeletePersonPhoto(ctx context.Context, personID string) error {
	n, err := s.execCount(ctx, "delete photo of "+personID, `DELETE FROM person_photos WHERE person_id = ?`, personID)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("delete photo of %s: %w", personID, store.ErrNotFound)
	}
	return nil
}
