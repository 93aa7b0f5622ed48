package migrate_test

import (
	"errors"
	"testing"
	"testing/fstest"

	"vigil/internal/store"
	"vigil/internal/store/migrate"
)

func TestLoad(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	good := fstest.MapFS{
		"m/0002_more.sql": file("B"),
		"m/0001_init.sql": file("A"),
		"m/README":        file("not a migration"),
	}
	ms, err := migrate.Load(good, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Version != 1 || ms[1].Name != "0002_more.sql" || ms[0].Checksum != migrate.Checksum("A") {
		t.Errorf("Load = %+v", ms)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":       {"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")},
		"duplicate": {"m/0001_a.sql": file("A"), "m/001_b.sql": file("B")},
		"bad name":  {"m/init.sql": file("A")},
		"zero":      {"m/0000_a.sql": file("A")},
		"empty":     {"m/README": file("")},
	} {
		if _, err := migrate.Load(fsys, "m"); err == nil {
			t.Errorf("Load %s: no error", name)
		}
	}
}

func TestCompare(t *testing.T) {
	ms := []migrate.Migration{{Version: 1, Checksum: "a"}, {Version: 2, Checksum: "b"}}
	rec := func(v int, sum string) migrate.Record { return migrate.Record{Version: v, Checksum: sum} }
	for _, tc := range []struct {
		name string
		recs []migrate.Record
		want error
	}{
		{"current", []migrate.Record{rec(1, "a"), rec(2, "b")}, nil},
		{"empty", nil, store.ErrSchemaOlder},
		{"behind", []migrate.Record{rec(1, "a")}, store.ErrSchemaOlder},
		{"ahead", []migrate.Record{rec(1, "a"), rec(2, "b"), rec(3, "c")}, store.ErrSchemaNewer},
		{"drift", []migrate.Record{rec(1, "x"), rec(2, "b")}, store.ErrSchemaDrift},
		{"ahead wins over drift", []migrate.Record{rec(1, "x"), rec(3, "c")}, store.ErrSchemaNewer},
		{"drift wins over behind", []migrate.Record{rec(1, "x")}, store.ErrSchemaDrift},
	} {
		err := migrate.Compare(ms, tc.recs).Err()
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}
