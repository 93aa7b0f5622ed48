package postgres

import (
	"context"

	"vigil/internal/store/migrate"
)

// MigrateTo applies the embedded migrations 1 … v in schema and no later
// one, for upgrade tests.
func MigrateTo(ctx context.Context, url, schema string, v int) error {
	pool, err := connect(ctx, url, Options{Schema: schema, MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	ms, err := Migrations()
	if err != nil {
		return err
	}
	_, err = migrate.Up(ctx, driver{pool: pool}, ms[:v])
	return err
}

// SetCopyNew sets the batch size from which ApplyEvents's fast path writes
// events with COPY, so that tests can cover it with small batches.
func (s *Store) SetCopyNew(n int) { s.copyNew = n }
