package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/store"
)

// testRotas: rotas per organisation with their shifts as written,
// replaced in place (overrides kept), overrides ordered by start whatever
// the order they were added in, deleted with the rota, and the
// organisation and user checked by the store.
func testRotas(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	night := store.Rota{OrgID: "acme", Name: "night", TimeZone: "Europe/London", UpdatedAt: at(time.Second), Shifts: []store.RotaShift{
		{Days: []time.Weekday{time.Monday, time.Tuesday}, Start: 20 * 60, End: 8 * 60, Users: []string{"u2", "u1"}},
		{Days: []time.Weekday{time.Sunday}, Start: 0, End: 23*60 + 59, Users: []string{"u3"}},
	}}
	day := store.Rota{OrgID: "acme", Name: "day", TimeZone: "UTC", UpdatedAt: at(time.Second),
		Shifts: []store.RotaShift{{Days: []time.Weekday{time.Saturday}, Start: 8 * 60, End: 20 * 60, Users: []string{"u1"}}}}
	other := store.Rota{OrgID: "beta", Name: "night", TimeZone: "Europe/Paris", UpdatedAt: at(time.Second)}
	for _, r := range []store.Rota{night, day, other} {
		must(t, s.PutRota(ctx, r), "put rota "+r.OrgID+"/"+r.Name)
	}
	mustErr(t, s.PutRota(ctx, store.Rota{OrgID: "nope", Name: "x", TimeZone: "UTC"}), store.ErrNotFound, "put rota of an unknown org")

	got, err := s.GetRota(ctx, "acme", "night")
	must(t, err, "get rota")
	if diff := cmp.Diff(night, got, opts); diff != "" {
		t.Errorf("GetRota (-want +got):\n%s", diff)
	}
	_, err = s.GetRota(ctx, "acme", "nope")
	mustErr(t, err, store.ErrNotFound, "get unknown rota")
	_, err = s.GetRota(ctx, "beta", "day")
	mustErr(t, err, store.ErrNotFound, "get another org's rota")

	// Overrides, added out of order; the same ID twice is a conflict; an
	// unknown rota or user is not found.
	for _, o := range []store.RotaOverride{
		{ID: "o2", OrgID: "acme", Rota: "night", UserID: "u3", From: at(3 * time.Hour), To: at(5 * time.Hour), CreatedAt: at(2 * time.Second)},
		{ID: "o1", OrgID: "acme", Rota: "night", UserID: "u1", From: at(time.Hour), To: at(4 * time.Hour), CreatedAt: at(2 * time.Second)},
		{ID: "o0", OrgID: "acme", Rota: "day", UserID: "u2", From: at(time.Hour), To: at(2 * time.Hour), CreatedAt: at(2 * time.Second)},
	} {
		must(t, s.AddRotaOverride(ctx, o), "add override "+o.ID)
	}
	mustErr(t, s.AddRotaOverride(ctx, store.RotaOverride{ID: "o1", OrgID: "acme", Rota: "day", UserID: "u1", From: at(0), To: at(time.Hour)}),
		store.ErrConflict, "add override with a taken id")
	mustErr(t, s.AddRotaOverride(ctx, store.RotaOverride{ID: "o8", OrgID: "acme", Rota: "nope", UserID: "u1", From: at(0), To: at(time.Hour)}),
		store.ErrNotFound, "add override to an unknown rota")
	mustErr(t, s.AddRotaOverride(ctx, store.RotaOverride{ID: "o9", OrgID: "acme", Rota: "night", UserID: "nobody", From: at(0), To: at(time.Hour)}),
		store.ErrNotFound, "add override for an unknown user")

	// Replacing the pattern keeps the overrides.
	night.TimeZone, night.UpdatedAt = "Europe/Dublin", at(time.Minute)
	night.Shifts = night.Shifts[:1]
	must(t, s.PutRota(ctx, night), "replace rota")
	night.Overrides = []store.RotaOverride{
		{ID: "o1", OrgID: "acme", Rota: "night", UserID: "u1", From: at(time.Hour), To: at(4 * time.Hour), CreatedAt: at(2 * time.Second)},
		{ID: "o2", OrgID: "acme", Rota: "night", UserID: "u3", From: at(3 * time.Hour), To: at(5 * time.Hour), CreatedAt: at(2 * time.Second)},
	}
	day.Overrides = []store.RotaOverride{
		{ID: "o0", OrgID: "acme", Rota: "day", UserID: "u2", From: at(time.Hour), To: at(2 * time.Hour), CreatedAt: at(2 * time.Second)},
	}
	list, err := s.ListRotas(ctx, "acme")
	must(t, err, "list rotas")
	if diff := cmp.Diff([]store.Rota{day, night}, list, opts); diff != "" {
		t.Errorf("ListRotas (-want +got):\n%s", diff)
	}

	// Deleting: one override, then a rota with the rest of its own.
	mustErr(t, s.DeleteRotaOverride(ctx, "acme", "day", "o1"), store.ErrNotFound, "delete another rota's override")
	must(t, s.DeleteRotaOverride(ctx, "acme", "night", "o1"), "delete override")
	mustErr(t, s.DeleteRotaOverride(ctx, "acme", "night", "o1"), store.ErrNotFound, "delete override twice")
	must(t, s.DeleteRota(ctx, "acme", "night"), "delete rota")
	mustErr(t, s.DeleteRota(ctx, "acme", "night"), store.ErrNotFound, "delete rota twice")
	// A new rota of the same name starts without the old overrides.
	must(t, s.PutRota(ctx, store.Rota{OrgID: "acme", Name: "night", TimeZone: "UTC", UpdatedAt: at(time.Hour)}), "put rota again")
	got, err = s.GetRota(ctx, "acme", "night")
	must(t, err, "get new rota")
	if len(got.Overrides) != 0 || len(got.Shifts) != 0 {
		t.Errorf("new rota has %d overrides and %d shifts, want none", len(got.Overrides), len(got.Shifts))
	}
	if list, err = s.ListRotas(ctx, "beta"); err != nil || len(list) != 1 || list[0].Name != "night" || list[0].TimeZone != "Europe/Paris" {
		t.Errorf("ListRotas(beta) = %+v, %v; want its night rota untouched", list, err)
	}
}
