package app

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

func TestFallSensitivityOfWearer(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme", CreatedAt: now}))
	must(st.CreatePerson(ctx, store.Person{ID: "p1", OrgID: "acme", Kind: store.PersonResident, Name: "Ada", CreatedAt: now, FallSensitivity: -1.5}))
	must(st.CreateDevice(ctx, store.Device{ID: "worn", OrgID: "acme", Name: "pendant", CreatedAt: now}))
	must(st.CreateDevice(ctx, store.Device{ID: "spare", OrgID: "acme", Name: "pendant", CreatedAt: now}))
	must(st.AssignDevice(ctx, "worn", "p1"))

	look := fallSensitivity(st)
	for id, want := range map[string]float64{"worn": -1.5, "spare": 0} {
		got, err := look(ctx, id)
		if err != nil || got != want {
			t.Errorf("sensitivity of %s = %v, %v; want %v", id, got, err, want)
		}
	}
	must(st.SetFallSensitivity(ctx, "p1", 2))
	if got, err := look(ctx, "worn"); err != nil || got != 2 {
		t.Errorf("after a change: %v, %v; want 2", got, err)
	}
	if _, err := look(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown device: %v, want ErrNotFound", err)
	}
}
