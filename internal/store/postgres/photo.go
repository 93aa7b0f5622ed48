package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"vigil/internal/store"
)

// PutPersonPhoto sets a person's photo; see store.PersonPhotoStore.
func (s *Store) PutPersonPhoto(ctx context.Context, p store.PersonPhoto) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO person_photos (person_id, content_type, bytes, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (person_id) DO UPDATE SET content_type = excluded.content_type, bytes = excluded.bytes,
		updated_at = excluded.updated_at`,
		p.PersonID, p.ContentType, p.Bytes, orNow(p.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put photo of %s: %w", p.PersonID, classify(err))
	}
	return nil
}

// GetPersonPhoto reads a person's photo; see store.PersonPhotoStore.
func (s *Store) GetPersonPhoto(ctx context.Context, personID string) (store.PersonPhoto, error) {
	p := store.PersonPhoto{PersonID: personID}
	err := s.pool.QueryRow(ctx, `SELECT content_type, bytes, updated_at FROM person_photos WHERE person_id = $1`, personID).
		Scan(&p.ContentType, &p.Bytes, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.PersonPhoto{}, fmt.Errorf("get photo of %s: %w", personID, store.ErrNotFound)
	}
	if err != nil {
		return store.PersonPhoto{}, fmt.Errorf("get photo of %s: %w", personID, err)
	}
	p.UpdatedAt = p.UpdatedAt.UTC()
	return p, nil
}

// DeletePersonPhoto removes a person's photo; see store.PersonPhotoStore.
func (s *Store) DeletePersonPhoto(ctx context.Context, personID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM person_photos WHERE person_id = $1`, personID)
	if err != nil {
		return fmt.Errorf("delete photo of %s: %w", personID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete photo of %s: %w", personID, store.ErrNotFound)
	}
	return nil
}
