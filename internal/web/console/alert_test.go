package console

import (
	"context"
	"time"

	"vigil/internal/store"
)

// The alert view's store reads (alertStore) on the shared fake.

func (s *fakeStore) Positions(_ context.Context, deviceID string, from, to time.Time) ([]store.PositionRecord, error) {
	return nil, nil
}

func (s *fakeStore) GetEscalation(_ context.Context, alertID string) (store.Escalation, error) {
	return store.Escalation{}, store.ErrNotFound
}
