package geofence_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/paulmach/orb/encoding/wkt"

	"vigil/internal/geofence"
)

// The PostGIS peer: the benchmark world's 10,000 fences in a table with a
// GiST index, in a fresh schema of the database at VIGIL_TEST_POSTGRES_URL
// (created on first use, dropped by TestMain). Polygons go in as they are;
// circles as ST_Buffer of the centre as geography (a 64-gon). Skipped
// without the variable or without the postgis extension.
var pg struct {
	once   sync.Once
	conn   *pgx.Conn
	schema string
	skip   string
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pg.conn != nil {
		ctx := context.Background()
		if _, err := pg.conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{pg.schema}.Sanitize()+` CASCADE`); err != nil {
			fmt.Fprintf(os.Stderr, "drop schema %s: %v\n", pg.schema, err)
			code = 1
		}
		pg.conn.Close(ctx)
	}
	os.Exit(code)
}

// postgis returns a connection whose search_path starts with a schema
// holding the world's fences, or skips.
func postgis(tb testing.TB) *pgx.Conn {
	tb.Helper()
	url := os.Getenv("VIGIL_TEST_POSTGRES_URL")
	if url == "" {
		tb.Skip("VIGIL_TEST_POSTGRES_URL not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping the PostGIS comparison")
	}
	pg.once.Do(func() { pg.err = loadPostGIS(context.Background(), url) })
	if pg.skip != "" {
		tb.Skip(pg.skip)
	}
	if pg.err != nil {
		tb.Fatal(pg.err)
	}
	return pg.conn
}

func loadPostGIS(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	var available bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis')`).Scan(&available); err != nil {
		conn.Close(ctx)
		return fmt.Errorf("look for postgis: %w", err)
	}
	if !available {
		conn.Close(ctx)
		pg.skip = "postgis extension not available on this server (Debian: apt-get install postgresql-15-postgis-3); skipping the PostGIS comparison"
		return nil
	}
	if _, err := conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS postgis`); err != nil {
		conn.Close(ctx)
		pg.skip = "cannot create the postgis extension (" + err.Error() + "); skipping the PostGIS comparison"
		return nil
	}
	var extSchema string
	if err := conn.QueryRow(ctx, `SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'postgis'`).Scan(&extSchema); err != nil {
		conn.Close(ctx)
		return fmt.Errorf("postgis schema: %w", err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	pg.conn, pg.schema = conn, "vigil_geofence_"+hex.EncodeToString(b)
	schema := pgx.Identifier{pg.schema}.Sanitize()
	for _, q := range []string{
		`CREATE SCHEMA ` + schema,
		`SET search_path TO ` + schema + `, ` + pgx.Identifier{extSchema}.Sanitize(),
		`CREATE TABLE fences_src (id int PRIMARY KEY, wkt text, lon float8, lat float8, radius_m float8)`,
		`CREATE TABLE fences (id int PRIMARY KEY, circle bool NOT NULL, geom geometry(Geometry, 4326) NOT NULL)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	fences := world().fences
	rows := make([][]any, len(fences))
	for i := range fences {
		f := &fences[i]
		if f.IsCircle() {
			rows[i] = []any{i, nil, f.Center[0], f.Center[1], f.RadiusM}
		} else {
			rows[i] = []any{i, wkt.MarshalString(f.Polygon), nil, nil, nil}
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"fences_src"}, []string{"id", "wkt", "lon", "lat", "radius_m"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy fences: %w", err)
	}
	for _, q := range []string{
		`INSERT INTO fences (id, circle, geom)
		 SELECT id, wkt IS NULL, CASE WHEN wkt IS NULL
		   THEN ST_Buffer(ST_SetSRID(ST_Point(lon, lat), 4326)::geography, radius_m, 'quad_segs=16')::geometry
		   ELSE ST_GeomFromText(wkt, 4326) END
		 FROM fences_src`,
		`CREATE INDEX fences_geom ON fences USING gist (geom)`,
		`ANALYZE fences`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("load fences: %w", err)
		}
	}
	return nil
}

const (
	queryOne   = `SELECT id FROM fences WHERE ST_Contains(geom, ST_SetSRID(ST_Point($1, $2), 4326))`
	queryBatch = `SELECT p.i, f.id FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS p(lon, lat, i)
		JOIN fences f ON ST_Contains(f.geom, ST_SetSRID(ST_Point(p.lon, p.lat), 4326))`
)

// containsPostGIS returns, for each fix, the ids (positions in the world's
// fences) of the fences PostGIS says contain it, asking batch points per
// query.
func containsPostGIS(ctx context.Context, conn *pgx.Conn, fixes []geofence.Fix, batch int) ([][]int, error) {
	out := make([][]int, len(fixes))
	for start := 0; start < len(fixes); start += batch {
		end := min(start+batch, len(fixes))
		if batch == 1 {
			rows, _ := conn.Query(ctx, queryOne, fixes[start].Lon, fixes[start].Lat)
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				out[start] = append(out[start], int(id))
			}
			continue
		}
		lons, lats := make([]float64, 0, end-start), make([]float64, 0, end-start)
		for _, f := range fixes[start:end] {
			lons, lats = append(lons, f.Lon), append(lats, f.Lat)
		}
		rows, _ := conn.Query(ctx, queryBatch, lons, lats)
		var i int64
		var id int32
		_, err := pgx.ForEachRow(rows, []any{&i, &id}, func() error {
			out[start+int(i)-1] = append(out[start+int(i)-1], int(id))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func benchPostGIS(b *testing.B, fixes []geofence.Fix, batch int) {
	conn := postgis(b)
	ctx := context.Background()
	found := 0
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done, len(fixes))
		off := done % len(fixes)
		n = min(n, len(fixes)-off)
		res, err := containsPostGIS(ctx, conn, fixes[off:off+n], batch)
		if err != nil {
			b.Fatal(err)
		}
		for _, ids := range res {
			found += len(ids)
		}
		done += n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(found)/float64(b.N), "hits/point")
}

// TestPostGISAgrees checks Relate against ST_Contains on the same fences
// and points: polygons must agree exactly (both test in planar lon/lat);
// circles (a 64-gon in PostGIS) may differ only within 0.2% of the radius
// + 1 m of the edge.
func TestPostGISAgrees(t *testing.T) {
	conn := postgis(t)
	w := world()
	fixes := append(append([]geofence.Fix(nil), w.fixes["near/exact"][:6000]...), w.fixes["uniform/exact"][:1000]...)
	for _, batch := range []int{1000, 1} {
		pts := fixes
		if batch == 1 {
			pts = fixes[:300] // one query each: slower
		}
		got, err := containsPostGIS(context.Background(), conn, pts, batch)
		if err != nil {
			t.Fatal(err)
		}
		hits := 0
		for i, fix := range pts {
			differ := map[int]bool{} // fence → inside per Go, for fences where one side says inside
			for _, id := range got[i] {
				differ[id] = false
			}
			w.idx.Search(fix, func(f *geofence.Fence) bool {
				if f.Relate(fix) == geofence.Inside {
					hits++
					j := fenceNum(f)
					if _, pgToo := differ[j]; pgToo {
						delete(differ, j)
					} else {
						differ[j] = true
					}
				}
				return true
			})
			for j, inGo := range differ {
				f := &w.fences[j]
				if f.IsCircle() {
					edge := geofence.Fix{Lat: fix.Lat, Lon: fix.Lon, AccuracyM: 0.002*f.RadiusM + 1}
					if f.Relate(edge) == geofence.Unknown {
						continue
					}
				}
				t.Errorf("batch %d, point %d, fence %d (circle %v): Go inside=%v, PostGIS inside=%v", batch, i, j, f.IsCircle(), inGo, !inGo)
			}
		}
		if batch > 1 && hits < 1000 {
			t.Errorf("only %d hits: the comparison means little", hits)
		}
	}
}

// fenceNum is a world fence's position, from its id "f%05d".
func fenceNum(f *geofence.Fence) int {
	n := 0
	for _, c := range f.ID[1:] {
		n = n*10 + int(c-'0')
	}
	return n
}
