package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/store"
)

func testOrgSSO(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	_, err := s.GetOrgSSO(ctx, "acme")
	mustErr(t, err, store.ErrNotFound, "get unset sso")
	o := store.OrgSSO{OrgID: "acme", Issuer: "https://idp.acme.example", ClientID: "vigil", SecretSealed: []byte{1, 2, 3}, UpdatedAt: at(time.Minute)}
	must(t, s.PutOrgSSO(ctx, o), "put sso")
	got, err := s.GetOrgSSO(ctx, "acme")
	must(t, err, "get sso")
	if diff := cmp.Diff(o, got, opts); diff != "" {
		t.Errorf("sso (-want +got):\n%s", diff)
	}
	o2 := store.OrgSSO{OrgID: "acme", Issuer: "https://login.acme.example", ClientID: "vigil-2", UpdatedAt: at(time.Hour)}
	must(t, s.PutOrgSSO(ctx, o2), "replace sso")
	got, err = s.GetOrgSSO(ctx, "acme")
	must(t, err, "get sso")
	if diff := cmp.Diff(o2, got, opts); diff != "" {
		t.Errorf("replaced sso (-want +got):\n%s", diff)
	}
	if _, err := s.GetOrgSSO(ctx, "beta"); err == nil {
		t.Error("another organisation has acme's provider")
	}
	mustErr(t, s.PutOrgSSO(ctx, store.OrgSSO{OrgID: "nope", Issuer: "https://x", ClientID: "c", UpdatedAt: at(0)}), store.ErrNotFound, "put sso of unknown org")
	must(t, s.DeleteOrgSSO(ctx, "acme"), "delete sso")
	mustErr(t, s.DeleteOrgSSO(ctx, "acme"), store.ErrNotFound, "delete sso again")
}
