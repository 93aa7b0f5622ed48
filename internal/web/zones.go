package web

import (
	"context"
	"fmt"
	"io"
	"time"

	"vigil/internal/geofence"
	"vigil/internal/safety"
	"vigil/internal/store"
)

// ZoneStore is what importing zones writes to.
type ZoneStore interface {
	PutGeofence(ctx context.Context, g store.GeofenceRecord) error
}

// ImportZones parses a GeoJSON document of fences and stores each for an
// organisation: all are validated before any is written. A feature with an
// id creates or replaces that zone; one without gets a new id. It is used
// by the API and by `vigil zones import`.
func ImportZones(ctx context.Context, st ZoneStore, orgID string, r io.Reader, now time.Time) (int, error) {
	b, err := io.ReadAll(io.LimitReader(r, geofence.MaxInputBytes+1))
	if err != nil {
		return 0, fmt.Errorf("import zones: read: %w", err)
	}
	fences, err := geofence.ParseGeoJSON(b)
	if err != nil {
		return 0, err
	}
	for i := range fences {
		f := &fences[i]
		if f.ID == "" {
			f.ID = safety.NewID("g")
		}
		one, err := geofence.MarshalGeoJSON([]geofence.Fence{*f})
		if err != nil {
			return i, fmt.Errorf("import zones: %w", err)
		}
		if err := st.PutGeofence(ctx, store.GeofenceRecord{ID: f.ID, OrgID: orgID, Name: f.Name, Feature: one, CreatedAt: now, UpdatedAt: now}); err != nil {
			return i, fmt.Errorf("import zones: %w", err)
		}
	}
	return len(fences), nil
}
