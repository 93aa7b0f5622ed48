package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"vigil/internal/store/postgres"
	"vigil/internal/store/sqlite"
)

func runMigrate(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	kind, dsn := cfg.StoreKind()
	var applied []int
	switch kind {
	case "postgres":
		applied, err = postgres.Migrate(ctx, dsn, "")
	default:
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		if dsn == "" {
			dsn = filepath.Join(cfg.DataDir, "vigil.db")
		}
		applied, err = sqlite.Migrate(ctx, dsn)
	}
	if err != nil {
		return fmt.Errorf("migrate %s store: %w", kind, err)
	}
	if len(applied) == 0 {
		fmt.Fprintln(e.stdout, "schema is up to date")
		return nil
	}
	fmt.Fprintf(e.stdout, "applied migrations %v\n", applied)
	return nil
}
