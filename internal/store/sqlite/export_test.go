package sqlite

import (
	"context"

	"vigil/internal/store/migrate"
)

// MigrateTo applies the embedded migrations 1 … v of the database at path
// and no later one, for upgrade tests.
func MigrateTo(ctx context.Context, path string, v int) error {
	w, r, err := openDBs(path, Options{ReadConns: 1})
	if err != nil {
		return err
	}
	defer r.Close()
	defer w.Close()
	ms, err := Migrations()
	if err != nil {
		return err
	}
	_, err = migrate.Up(ctx, driver{db: w}, ms[:v])
	return err
}
