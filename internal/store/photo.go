package store

import (
	"context"
	"time"
)

// PersonPhoto is the picture responders use to recognise a person. The
// caller stores only images it has decoded and re-encoded itself (no
// EXIF, no embedded payload); the store keeps the bytes as given.
type PersonPhoto struct {
	PersonID    string
	ContentType string // e.g. "image/jpeg"
	Bytes       []byte
	UpdatedAt   time.Time
}

// PersonPhotoStore keeps people's photos, at most one each; part of Store.
type PersonPhotoStore interface {
	// PutPersonPhoto sets or replaces a person's photo; unknown person:
	// ErrNotFound.
	PutPersonPhoto(ctx context.Context, p PersonPhoto) error
	// GetPersonPhoto: no photo (or no such person): ErrNotFound.
	GetPersonPhoto(ctx context.Context, personID string) (PersonPhoto, error)
	// DeletePersonPhoto removes it; no photo: ErrNotFound.
	DeletePersonPhoto(ctx context.Context, personID string) error
}
