package storetest

import (
	"context"
	"testing"
	"time"

	"vigil/internal/store"
)

func testAccessBreakGlass(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	g := store.BreakGlass{ID: "bg1", OrgID: "acme", UserID: "u1", PersonID: "p1", Reason: "fall reported by neighbour",
		CreatedAt: at(0), ExpiresAt: at(30 * time.Minute)}
	must(t, s.CreateBreakGlass(ctx, g), "create grant")
	mustErr(t, s.CreateBreakGlass(ctx, g), store.ErrConflict, "create the same grant again")
	must(t, s.CreateBreakGlass(ctx, store.BreakGlass{ID: "bg2", OrgID: "acme", UserID: "u1", PersonID: "p1", Reason: "r",
		CreatedAt: at(time.Minute), ExpiresAt: at(5 * time.Minute)}), "create a short grant")
	list := func(when time.Duration) []string {
		t.Helper()
		gs, err := s.ListBreakGlass(ctx, "u1", at(when))
		must(t, err, "list grants")
		var ids []string
		for _, g := range gs {
			ids = append(ids, g.ID)
		}
		return ids
	}
	if got := list(time.Minute); len(got) != 2 || got[0] != "bg1" || got[1] != "bg2" {
		t.Errorf("grants at 1m: %v, want [bg1 bg2]", got)
	}
	if got := list(5 * time.Minute); len(got) != 1 || got[0] != "bg1" {
		t.Errorf("grants at 5m (bg2 expired): %v, want [bg1]", got)
	}
	if got := list(30 * time.Minute); len(got) != 0 {
		t.Errorf("grants at 30m: %v, want none", got)
	}
	gs, err := s.ListBreakGlass(ctx, "u1", at(0))
	must(t, err, "list grants")
	if len(gs) == 0 || gs[0].Reason != g.Reason || !gs[0].ExpiresAt.Equal(g.ExpiresAt) || gs[0].PersonID != "p1" {
		t.Errorf("grant read back: %+v", gs)
	}
	if got, err := s.ListBreakGlass(ctx, "u2", at(0)); err != nil || len(got) != 0 {
		t.Errorf("another user's grants: %v %v", got, err)
	}
}
