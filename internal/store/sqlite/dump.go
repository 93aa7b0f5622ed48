package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
)

// Snapshot writes a consistent, compacted copy of the database at src to
// dst (VACUUM INTO, file mode 0600), for backups. It runs as one read transaction beside the server's writer (WAL).
func Snapshot(ctx context.Context, src, dst string) error {
	// 128 MiB of page cache at most (it grows only as used): VACUUM INTO
	// rebuilds every index, and a small cache makes that thrash on a
	// large store.
	db, err := sql.Open("sqlite", src+"?_pragma=busy_timeout(10000)&_pragma=cache_size(-131072)")
	if err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	return os.Chmod(dst, 0o600)
}

// Counts counts the rows of every table of the database at path (read
// only), for backups and their restore checks.
func Counts(ctx context.Context, path string) (map[string]int64, error) {
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("count rows: %w", err)
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	counts := make(map[string]int64, len(names))
	for _, n := range names {
		var c int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM "`+strings.ReplaceAll(n, `"`, `""`)+`"`).Scan(&c); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", n, err)
		}
		counts[n] = c
	}
	return counts, nil
}
