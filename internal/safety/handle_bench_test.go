package safety_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/clock"
	"vigil/internal/event"
	"vigil/internal/safety"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
	"vigil/internal/web"
)

// BenchmarkHandlePositions measures the safety consumer's cost per
// position report, the bulk of the traffic, in batches as the bus hands
// them over: 10,000 devices, either unassigned (the rules have nothing to
// do but note the fix) or worn by workers in a session in an organisation
// with 1,000 zones (geofences evaluated, offline watch moved).
//
//	go test -run XXX -bench HandlePositions -count 5 ./internal/safety/
func BenchmarkHandlePositions(b *testing.B) {
	for _, onDuty := range []bool{false, true} {
		name := "unassigned"
		if onDuty {
			name = "on-duty-1000-zones"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "v.db"), sqlite.Options{AutoMigrate: true})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if err := st.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme"}); err != nil {
				b.Fatal(err)
			}
			const devices = 10_000
			for i := range devices {
				dev := store.Device{ID: fmt.Sprintf("d%05d", i), OrgID: "acme", Name: "x"}
				if onDuty {
					p := store.Person{ID: fmt.Sprintf("p%05d", i), OrgID: "acme", Kind: store.PersonWorker, Name: "w"}
					if err := st.CreatePerson(ctx, p); err != nil {
						b.Fatal(err)
					}
					dev.PersonID = p.ID
				}
				if err := st.CreateDevice(ctx, dev); err != nil {
					b.Fatal(err)
				}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			if onDuty {
				var fs []string
				for i := range 1000 {
					rule := "must_not_enter"
					if i%10 == 0 {
						rule = "must_stay_inside"
					}
					fs = append(fs, fmt.Sprintf(`{"type":"Feature","id":"z%d","geometry":{"type":"Point","coordinates":[%f,%f]},"properties":{"rule":%q,"radius_m":%d,"assign":["p%05d"]}}`,
						i, -2+rng.Float64()*2, 52+rng.Float64()*2, rule, 100+rng.IntN(900), rng.IntN(devices)))
				}
				doc := `{"type":"FeatureCollection","features":[` + strings.Join(fs, ",") + `]}`
				if _, err := web.ImportZones(ctx, st, "acme", strings.NewReader(doc), time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			eng := safety.New(st, nil, clock.Real{}, slog.New(slog.NewTextHandler(io.Discard, nil)), safety.Config{})
			if err := eng.Load(ctx); err != nil {
				b.Fatal(err)
			}
			if onDuty {
				for i := range devices {
					if _, err := eng.StartSession(ctx, safety.StartRequest{PersonID: fmt.Sprintf("p%05d", i), Duration: 8 * time.Hour}); err != nil {
						b.Fatal(err)
					}
				}
			}
			const batch = 400
			ids := make([]string, devices)
			for i := range ids {
				ids[i] = fmt.Sprintf("d%05d", i)
			}
			all := make([]event.Event, b.N+batch)
			t0 := time.Now().UTC()
			for seq := range all {
				all[seq] = event.Event{V: 1, OrgID: "acme", DeviceID: ids[rng.IntN(devices)], MsgID: fmt.Sprint(seq),
					Type: event.TypePosition, DeviceTime: t0.Add(time.Duration(seq) * time.Millisecond), ReceivedAt: t0, Source: event.SourceMQTT,
					Position: &event.Position{Lat: 52 + rng.Float64()*2, Lon: -2 + rng.Float64()*2, AccuracyM: 5 + rng.Float64()*20}}
			}
			b.ResetTimer()
			for n := 0; n < b.N; n += batch {
				if err := eng.HandleEvents(ctx, all[n:n+batch]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "positions/s")
		})
	}
}
