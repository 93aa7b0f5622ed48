package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"vigil/internal/store/migrate"
)

// This file is the logical dump and load behind `vigil backup` and
// `vigil restore` of a PostgreSQL store: every table of Vigil's schema as
// binary COPY, read in one REPEATABLE READ READ ONLY transaction (one
// snapshot: the audit chain and the row counts agree), and written back
// into an empty schema migrated to the dump's version, in one transaction.

// DumpTable is one table of a dump: its rows as the COPY stream wrote them.
type DumpTable struct {
	Name string
	Rows int64
}

// DumpInfo describes a dump: the schema version it was taken at and its
// tables in dependency order (a table after every table it references).
type DumpInfo struct {
	SchemaVersion int
	Tables        []DumpTable
}

// ErrNotEmpty is what Load returns for a target schema that holds any
// table, view or sequence.
var ErrNotEmpty = errors.New("target schema is not empty")

// dumpFormat is the COPY format of dumps: binary is exact for every type
// and the cheapest to parse; a dump loads only into the same schema
// version, so the column types match.
const dumpFormat = "(FORMAT binary)"

// Dump writes every table of Vigil's schema (schema, or the URL's
// search_path when ""), except schema_migrations, to the writer create
// returns for it, closing each. It refuses a schema this binary does not
// match. The server may keep writing: the dump is one snapshot.
func Dump(ctx context.Context, url, schema string, create func(table string) (io.WriteCloser, error)) (DumpInfo, error) {
	pool, err := connect(ctx, url, Options{Schema: schema, MaxConns: 2})
	if err != nil {
		return DumpInfo{}, fmt.Errorf("dump postgres: %w", err)
	}
	defer pool.Close()
	ms, err := Migrations()
	if err != nil {
		return DumpInfo{}, fmt.Errorf("dump postgres: %w", err)
	}
	if err := migrate.Check(ctx, driver{pool: pool}, ms); err != nil {
		return DumpInfo{}, fmt.Errorf("dump postgres: this binary does not match the store's schema: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return DumpInfo{}, fmt.Errorf("dump postgres: %w", err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return DumpInfo{}, fmt.Errorf("dump postgres: %w", err)
	}
	defer tx.Rollback(ctx)
	var info DumpInfo
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&info.SchemaVersion); err != nil {
		return DumpInfo{}, fmt.Errorf("dump postgres: schema version: %w", err)
	}
	tables, err := dumpOrder(ctx, tx)
	if err != nil {
		return DumpInfo{}, fmt.Errorf("dump postgres: %w", err)
	}
	for _, t := range tables {
		cols, err := columns(ctx, tx, t)
		if err != nil {
			return DumpInfo{}, fmt.Errorf("dump postgres: table %s: %w", t, err)
		}
		w, err := create(t)
		if err != nil {
			return DumpInfo{}, fmt.Errorf("dump postgres: table %s: %w", t, err)
		}
		tag, err := tx.Conn().PgConn().CopyTo(ctx, w,
			`COPY (SELECT `+cols+` FROM `+pgx.Identifier{t}.Sanitize()+`) TO STDOUT `+dumpFormat)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return DumpInfo{}, fmt.Errorf("dump postgres: table %s: %w", t, err)
		}
		info.Tables = append(info.Tables, DumpTable{Name: t, Rows: tag.RowsAffected()})
	}
	if err := tx.Commit(ctx); err != nil {
		return DumpInfo{}, fmt.Errorf("dump postgres: %w", err)
	}
	return info, nil
}

// Load restores a dump into schema (or the URL's search_path when ""),
// which must exist and be empty: in one transaction it applies the
// embedded migrations up to version, COPYs every table in the order given
// from the reader open returns for it, and moves identity and serial
// sequences past the restored values; on any error the schema is left
// empty. A table of the schema that is not
// in tables, or a name in tables that is not in the schema, is an error.
func Load(ctx context.Context, url, schema string, version int, tables []string, open func(table string) (io.ReadCloser, error)) error {
	pool, err := connect(ctx, url, Options{Schema: schema, MaxConns: 2})
	if err != nil {
		return fmt.Errorf("load postgres dump: %w", err)
	}
	defer pool.Close()
	if err := checkEmpty(ctx, pool); err != nil {
		return fmt.Errorf("load postgres dump: %w", err)
	}
	ms, err := Migrations()
	if err != nil {
		return fmt.Errorf("load postgres dump: %w", err)
	}
	if version < 1 || version > len(ms) || ms[version-1].Version != version {
		return fmt.Errorf("load postgres dump: schema version %d: this binary knows versions 1 to %d", version, len(ms))
	}
	// One transaction for the migrations and the data: a load that fails
	// anywhere leaves the schema as empty as it found it.
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("load postgres dump: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := migrate.Up(ctx, txDriver{tx: tx}, ms[:version]); err != nil {
		return fmt.Errorf("load postgres dump: migrate to version %d: %w", version, err)
	}
	have, err := dumpOrder(ctx, tx)
	if err != nil {
		return fmt.Errorf("load postgres dump: %w", err)
	}
	if a, b := slices.Sorted(slices.Values(have)), slices.Sorted(slices.Values(tables)); !slices.Equal(a, b) {
		return fmt.Errorf("load postgres dump: the dump's tables (%s) are not schema version %d's (%s)", strings.Join(b, ", "), version, strings.Join(a, ", "))
	}
	for _, t := range tables {
		cols, err := columns(ctx, tx, t)
		if err != nil {
			return fmt.Errorf("load postgres dump: table %s: %w", t, err)
		}
		r, err := open(t)
		if err != nil {
			return fmt.Errorf("load postgres dump: table %s: %w", t, err)
		}
		_, err = tx.Conn().PgConn().CopyFrom(ctx, r,
			`COPY `+pgx.Identifier{t}.Sanitize()+` (`+cols+`) FROM STDIN `+dumpFormat)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("load postgres dump: table %s: %w", t, err)
		}
	}
	if err := fixSequences(ctx, tx); err != nil {
		return fmt.Errorf("load postgres dump: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("load postgres dump: %w", err)
	}
	return nil
}

// txDriver is migrate.Driver inside one transaction: what driver.Apply
// does per migration, without its own transaction.
type txDriver struct{ tx pgx.Tx }

func (d txDriver) Applied(ctx context.Context) ([]migrate.Record, error) { return appliedIn(ctx, d.tx) }

func (d txDriver) Apply(ctx context.Context, m migrate.Migration) (bool, error) {
	return applyIn(ctx, d.tx, m)
}

// Counts returns the row count of every table of the schema (or the
// URL's search_path when ""), schema_migrations included.
func Counts(ctx context.Context, url, schema string) (map[string]int64, error) {
	pool, err := connect(ctx, url, Options{Schema: schema, MaxConns: 2})
	if err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	defer pool.Close()
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	defer tx.Rollback(ctx)
	tables, err := dumpOrder(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	counts := map[string]int64{}
	for _, t := range append(tables, "schema_migrations") {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{t}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t, err)
		}
		counts[t] = n
	}
	return counts, nil
}

// CheckEmpty returns nil when schema (or the URL's search_path when "")
// exists and holds no table, view or sequence: a restore checks this
// before it writes anything.
func CheckEmpty(ctx context.Context, url, schema string) error {
	pool, err := connect(ctx, url, Options{Schema: schema, MaxConns: 1})
	if err != nil {
		return fmt.Errorf("check restore target: %w", err)
	}
	defer pool.Close()
	if err := checkEmpty(ctx, pool); err != nil {
		return fmt.Errorf("check restore target: %w", err)
	}
	return nil
}

// checkEmpty refuses a search_path naming no existing schema, and a
// schema holding any relation.
func checkEmpty(ctx context.Context, pool *pgxpool.Pool) error {
	var schema *string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return err
	}
	if schema == nil {
		return errors.New("the search_path names no existing schema: create an empty one first")
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("schema %s holds %d tables, views or sequences: %w (restore into a new, empty schema or database)", *schema, n, ErrNotEmpty)
	}
	return nil
}

// dumpOrder lists the current schema's tables except schema_migrations,
// each after the tables its foreign keys reference (ties by name). A
// cycle between tables is an error: no load order would satisfy it.
func dumpOrder(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		AND c.relname <> 'schema_migrations' ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	deps := map[string][]string{}
	rows, err = tx.Query(ctx, `SELECT cl.relname, cf.relname FROM pg_constraint co
		JOIN pg_class cl ON cl.oid = co.conrelid JOIN pg_class cf ON cf.oid = co.confrelid
		JOIN pg_namespace n ON n.oid = cl.relnamespace
		WHERE co.contype = 'f' AND n.nspname = current_schema() AND cl.oid <> cf.oid`)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	var from, to string
	if _, err := pgx.ForEachRow(rows, []any{&from, &to}, func() error {
		deps[from] = append(deps[from], to)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	return topoOrder(names, deps)
}

// topoOrder orders names so that each comes after its deps (ties in the
// given order); deps outside names are ignored.
func topoOrder(names []string, deps map[string][]string) ([]string, error) {
	const (
		todo = iota
		busy
		done
	)
	state := map[string]int{}
	for _, n := range names {
		state[n] = todo
	}
	var out []string
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		switch st, ok := state[n]; {
		case !ok || st == done:
			return nil
		case st == busy:
			return fmt.Errorf("foreign keys form a cycle: %s", strings.Join(append(path, n), " → "))
		}
		state[n] = busy
		ds := slices.Sorted(slices.Values(deps[n]))
		for _, d := range ds {
			if err := visit(d, append(path, n)); err != nil {
				return err
			}
		}
		state[n] = done
		out = append(out, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// columns is the table's stored columns (not generated ones), quoted, in
// column order.
func columns(ctx context.Context, tx pgx.Tx, table string) (string, error) {
	rows, err := tx.Query(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass
		AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`, pgx.Identifier{table}.Sanitize())
	if err != nil {
		return "", fmt.Errorf("list columns: %w", err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("list columns: %w", err)
	}
	if len(cols) == 0 {
		return "", errors.New("list columns: none")
	}
	for i, c := range cols {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(cols, ", "), nil
}

// fixSequences sets every sequence owned by a column of the current
// schema (identity and serial columns) past the column's largest value,
// so that the next row gets a new one.
func fixSequences(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT c.relname, a.attname FROM pg_depend d
		JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
		JOIN pg_class c ON c.oid = d.refobjid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
		WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
		AND d.deptype IN ('a', 'i') AND n.nspname = current_schema()
		ORDER BY c.relname, a.attname`)
	if err != nil {
		return fmt.Errorf("list sequences: %w", err)
	}
	type col struct{ table, column string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (col, error) {
		var c col
		return c, r.Scan(&c.table, &c.column)
	})
	if err != nil {
		return fmt.Errorf("list sequences: %w", err)
	}
	for _, c := range cols {
		t, k := pgx.Identifier{c.table}.Sanitize(), pgx.Identifier{c.column}.Sanitize()
		// setval(seq, max, true) when rows exist, else (seq, 1, false):
		// the next value is max+1, or 1 on an empty table.
		if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), coalesce(max(`+k+`), 1), max(`+k+`) IS NOT NULL) FROM `+t,
			t, c.column); err != nil {
			return fmt.Errorf("set sequence of %s.%s: %w", c.table, c.column, err)
		}
	}
	return nil
}
