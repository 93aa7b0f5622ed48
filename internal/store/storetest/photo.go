package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/store"
)

func testPersonPhoto(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	_, err := s.GetPersonPhoto(ctx, "p1")
	mustErr(t, err, store.ErrNotFound, "get unset photo")
	p := store.PersonPhoto{PersonID: "p1", ContentType: "image/jpeg", Bytes: []byte{0xff, 0xd8, 0xff, 0, 1, 2}, UpdatedAt: at(time.Minute)}
	must(t, s.PutPersonPhoto(ctx, p), "put photo")
	got, err := s.GetPersonPhoto(ctx, "p1")
	must(t, err, "get photo")
	if diff := cmp.Diff(p, got, opts); diff != "" {
		t.Errorf("photo (-want +got):\n%s", diff)
	}
	p2 := store.PersonPhoto{PersonID: "p1", ContentType: "image/jpeg", Bytes: []byte{0xff, 0xd8, 9, 9}, UpdatedAt: at(time.Hour)}
	must(t, s.PutPersonPhoto(ctx, p2), "replace photo")
	got, err = s.GetPersonPhoto(ctx, "p1")
	must(t, err, "get photo")
	if diff := cmp.Diff(p2, got, opts); diff != "" {
		t.Errorf("replaced photo (-want +got):\n%s", diff)
	}
	_, err = s.GetPersonPhoto(ctx, "p9")
	mustErr(t, err, store.ErrNotFound, "another person has p1's photo")
	mustErr(t, s.PutPersonPhoto(ctx, store.PersonPhoto{PersonID: "nobody", ContentType: "image/jpeg", Bytes: []byte{1}, UpdatedAt: at(0)}), store.ErrNotFound, "put photo of unknown person")
	must(t, s.DeletePersonPhoto(ctx, "p1"), "delete photo")
	_, err = s.GetPersonPhoto(ctx, "p1")
	mustErr(t, err, store.ErrNotFound, "get deleted photo")
	mustErr(t, s.DeletePersonPhoto(ctx, "p1"), store.ErrNotFound, "delete photo again")
}
