package oidc_test

import (
	"bytes"
	"errors"
	"testing"

	"vigil/internal/auth/oidc"
)

// FuzzFinishPending feeds the pending-login parser, and Finish, arbitrary
// bytes (in real use they come back from a cookie or a store): it must not
// panic; bytes that parse must encode back to themselves; anything Finish
// is given with a state that matches no login must be ErrState, before any
// request reaches the provider.
func FuzzFinishPending(f *testing.F) {
	idp := newIdP(f)
	p, _ := newProvider(f, idp, nil)
	_, valid, err := p.Begin()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Fuzz(func(t *testing.T, pending []byte) {
		again, err := oidc.RoundTripPending(pending)
		switch {
		case err == nil && !bytes.Equal(again, pending):
			t.Errorf("pending %x encodes back as %x", pending, again)
		case err != nil && !errors.Is(err, oidc.ErrState):
			t.Errorf("ParsePending: err = %v, want ErrState", err)
		}
		_, err = p.Finish(t.Context(), pending, "a-state-of-no-login", "some-code")
		if !errors.Is(err, oidc.ErrState) {
			t.Errorf("Finish: err = %v, want ErrState", err)
		}
	})
}
