package encrypted

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"vigil/internal/datakey"
	"vigil/internal/store"
)

// EncryptExisting seals the personal data stored before encryption was
// turned on (values without the "enc1:" prefix) in place, field by field,
// while the server runs: each value is replaced only if it did not change
// meanwhile (a value written since is sealed already). It returns how
// many values of each table.column it sealed. Running it again seals
// nothing more; a value of an erased person is cleared.
func (s *Store) EncryptExisting(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for _, f := range store.PlainFields {
		key := f.Table + "." + f.Column
		for {
			vs, err := s.Store.ListUnsealed(ctx, f, 500)
			if err != nil {
				return out, fmt.Errorf("encrypt existing %s: %w", key, err)
			}
			done := 0
			for _, v := range vs {
				sealed, err := s.sealExisting(ctx, f, v)
				if err != nil {
					return out, fmt.Errorf("encrypt existing %s: %w", key, err)
				}
				ok, err := s.Store.ReplaceUnsealed(ctx, f, v.RowID, v.Value, sealed)
				if err != nil {
					return out, fmt.Errorf("encrypt existing %s: %w", key, err)
				}
				if ok {
					done++
				}
			}
			out[key] += done
			if len(vs) < 500 || done == 0 {
				break
			}
		}
	}
	n, err := s.encryptPhotos(ctx)
	out["person_photos.bytes"] = n
	return out, err
}

// sealExisting seals v as the decorator would have on its way in.
func (s *Store) sealExisting(ctx context.Context, f store.PlainField, v store.UnsealedValue) (string, error) {
	row := v.RowID
	switch f.Table {
	case "alerts":
		return s.sealAlertText(ctx, v.PersonID, v.OrgID, f.Table, f.Column, row, v.Value)
	case "alert_entries":
		return s.sealAlertText(ctx, v.PersonID, v.OrgID, f.Table, f.Column, entryRow(v.DedupKey), v.Value)
	case "deliveries":
		return s.sealText(ctx, datakey.OrgOwner(v.OrgID), f.Table, f.Column, row, v.Value)
	}
	sealed, err := s.sealText(ctx, datakey.PersonOwner(v.PersonID), f.Table, f.Column, row, v.Value)
	if errors.Is(err, datakey.ErrDestroyed) {
		// Left behind by an erasure: nothing may be kept readable.
		return "", nil
	}
	return sealed, err
}

// encryptPhotos seals every photo stored in plaintext.
func (s *Store) encryptPhotos(ctx context.Context) (int, error) {
	orgs, err := s.Store.ListOrgs(ctx)
	if err != nil {
		return 0, fmt.Errorf("encrypt existing photos: %w", err)
	}
	n := 0
	for _, o := range orgs {
		people, err := s.Store.ListPeople(ctx, o.ID)
		if err != nil {
			return n, fmt.Errorf("encrypt existing photos: %w", err)
		}
		for _, p := range people {
			ph, err := s.Store.GetPersonPhoto(ctx, p.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return n, fmt.Errorf("encrypt existing photos: %w", err)
			}
			if bytes.HasPrefix(ph.Bytes, []byte(textPrefix)) {
				continue
			}
			if err := s.PutPersonPhoto(ctx, ph); err != nil {
				return n, fmt.Errorf("encrypt existing photos: %w", err)
			}
			n++
		}
	}
	return n, nil
}
