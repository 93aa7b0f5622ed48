package mfa_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/webauthn"

	"vigil/internal/auth/mfa"
	"vigil/internal/auth/mfa/mfatest"
)

const (
	rpID   = "localhost"
	origin = "https://localhost:8443"
)

func newRP(t *testing.T) *mfa.WebAuthn {
	t.Helper()
	w, err := mfa.NewWebAuthn(rpID, "Vigil", []string{origin})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func newUser() mfa.User {
	return mfa.User{ID: []byte("user-handle-0001"), Name: "carer@example.org", DisplayName: "Carer One"}
}

// register runs a whole registration and returns the user with the new
// credential added (round-tripped through Marshal/UnmarshalCredential, as a
// store would).
func register(t *testing.T, w *mfa.WebAuthn, u mfa.User, a *mfatest.Authenticator) mfa.User {
	t.Helper()
	opts, sess, err := w.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := w.FinishRegistration(u, sess, resp)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	text, err := mfa.MarshalCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := mfa.UnmarshalCredential(text)
	if err != nil {
		t.Fatal(err)
	}
	u.Credentials = append(u.Credentials, stored)
	return u
}

// login runs a whole login and, on success, stores the updated credential.
func login(t *testing.T, w *mfa.WebAuthn, u *mfa.User, a *mfatest.Authenticator) error {
	t.Helper()
	opts, sess, err := w.BeginLogin(*u)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Get(opts)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := w.FinishLogin(*u, sess, resp)
	if err != nil {
		return err
	}
	for i := range u.Credentials {
		if bytes.Equal(u.Credentials[i].ID, cred.ID) {
			u.Credentials[i] = cred
		}
	}
	return nil
}

func TestRegisterThenLogin(t *testing.T) {
	w := newRP(t)
	a := mfatest.NewAuthenticator(origin)
	u := register(t, w, newUser(), a)

	c := u.Credentials[0]
	if c.AttestationFormat != "none" {
		t.Errorf("attestation format %q, want none", c.AttestationFormat)
	}
	if !c.Flags.UserPresent || !c.Flags.UserVerified {
		t.Errorf("flags %+v, want UP and UV", c.Flags)
	}
	for i := 1; i <= 3; i++ {
		if err := login(t, w, &u, a); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		if got := u.Credentials[0].Authenticator.SignCount; got != uint32(i) {
			t.Errorf("login %d: sign count %d, want %d", i, got, i)
		}
	}
}

func TestRegistrationOptions(t *testing.T) {
	w := newRP(t)
	a := mfatest.NewAuthenticator(origin)
	u := register(t, w, newUser(), a)

	opts, _, err := w.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		PublicKey struct {
			RP struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"rp"`
			Challenge   string `json:"challenge"`
			Attestation string `json:"attestation"`
			Selection   struct {
				ResidentKey      string `json:"residentKey"`
				UserVerification string `json:"userVerification"`
			} `json:"authenticatorSelection"`
			Exclude []struct {
				ID string `json:"id"`
			} `json:"excludeCredentials"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(opts, &o); err != nil {
		t.Fatal(err)
	}
	p := o.PublicKey
	if p.RP.ID != rpID || p.RP.Name != "Vigil" {
		t.Errorf("rp = %+v", p.RP)
	}
	if ch, err := base64.RawURLEncoding.DecodeString(p.Challenge); err != nil || len(ch) < 16 {
		t.Errorf("challenge %q: %d bytes, %v", p.Challenge, len(ch), err)
	}
	if p.Attestation != "none" {
		t.Errorf("attestation = %q, want none", p.Attestation)
	}
	if p.Selection.ResidentKey != "preferred" || p.Selection.UserVerification != "preferred" {
		t.Errorf("authenticatorSelection = %+v, want preferred/preferred", p.Selection)
	}
	if len(p.Exclude) != 1 || p.Exclude[0].ID != base64.RawURLEncoding.EncodeToString(u.Credentials[0].ID) {
		t.Errorf("excludeCredentials = %+v, want the registered credential", p.Exclude)
	}
	// The authenticator honours the exclusion, as a browser would.
	if _, err := a.Create(opts); !errors.Is(err, mfatest.ErrExcluded) {
		t.Errorf("second registration of the same authenticator: %v, want ErrExcluded", err)
	}
	// A second authenticator can be added.
	b := mfatest.NewAuthenticator(origin)
	u = register(t, w, u, b)
	if len(u.Credentials) != 2 {
		t.Fatalf("%d credentials, want 2", len(u.Credentials))
	}
	if err := login(t, w, &u, b); err != nil {
		t.Errorf("login with the second authenticator: %v", err)
	}
}

func TestRegistrationRefusesDuplicateCredential(t *testing.T) {
	// A client that ignores excludeCredentials and replays an already
	// registered credential id is refused by the server.
	w := newRP(t)
	a := mfatest.NewAuthenticator(origin)
	u0 := newUser()
	opts, sess, err := w.BeginRegistration(u0)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := w.FinishRegistration(u0, sess, resp)
	if err != nil {
		t.Fatal(err)
	}
	u1 := u0
	u1.Credentials = []webauthn.Credential{cred}
	// Same response against the same session, now that u holds the credential.
	if _, err := w.FinishRegistration(u1, sess, resp); !errors.Is(err, mfa.ErrWebAuthn) {
		t.Errorf("duplicate credential: err = %v, want ErrWebAuthn", err)
	}
}

func TestRegistrationWrongOrigin(t *testing.T) {
	w := newRP(t)
	u := newUser()
	for _, bad := range []string{"https://evil.example", "http://localhost:8443", "https://localhost:9443", "https://localhost.evil.example:8443", ""} {
		opts, sess, err := w.BeginRegistration(u)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := mfatest.NewAuthenticator(bad).Create(opts)
		if err != nil {
			// An empty origin has no host to default the rp id from; the
			// options carry one, so this must not happen.
			t.Fatalf("%q: %v", bad, err)
		}
		if _, err := w.FinishRegistration(u, sess, resp); !errors.Is(err, mfa.ErrWebAuthn) {
			t.Errorf("origin %q: err = %v, want ErrWebAuthn", bad, err)
		}
	}
}

func TestRegistrationWrongChallengeOrUser(t *testing.T) {
	w := newRP(t)
	u := newUser()
	a := mfatest.NewAuthenticator(origin)
	opts1, _, _ := w.BeginRegistration(u)
	_, sess2, _ := w.BeginRegistration(u)
	resp, err := a.Create(opts1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.FinishRegistration(u, sess2, resp); !errors.Is(err, mfa.ErrWebAuthn) {
		t.Errorf("response to another ceremony's challenge: err = %v", err)
	}
	// A session begun for one user cannot finish for another.
	opts, sess, _ := w.BeginRegistration(u)
	resp, _ = a.Create(opts)
	other := mfa.User{ID: []byte("user-handle-0002"), Name: "b", DisplayName: "B"}
	if _, err := w.FinishRegistration(other, sess, resp); !errors.Is(err, mfa.ErrWebAuthn) {
		t.Errorf("finish for another user: err = %v", err)
	}
}

func TestRegistrationWrongRPID(t *testing.T) {
	// An RP on another domain creates the options; our RP refuses the
	// response because the rpIdHash is for the other domain.
	w := newRP(t)
	evil, err := mfa.NewWebAuthn("evil.example", "Evil", []string{origin})
	if err != nil {
		t.Fatal(err)
	}
	u := newUser()
	_, sess, _ := w.BeginRegistration(u)
	evilOpts, _, _ := evil.BeginRegistration(u)
	// Splice our challenge into the evil options so only the RP ID differs.
	var sd struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(sess, &sd); err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]any
	if err := json.Unmarshal(evilOpts, &m); err != nil {
		t.Fatal(err)
	}
	m["publicKey"]["challenge"] = sd.Challenge
	spliced, _ := json.Marshal(m)
	resp, err := mfatest.NewAuthenticator(origin).Create(spliced)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.FinishRegistration(u, sess, resp); !errors.Is(err, mfa.ErrWebAuthn) {
		t.Errorf("wrong rp id: err = %v, want ErrWebAuthn", err)
	}
}

func TestLoginWrongOrigin(t *testing.T) {
	w := newRP(t)
	a := mfatest.NewAuthenticator(origin)
	u := register(t, w, newUser(), a)
	phished := a.Clone()
	phished.SetOrigin("https://1ocalhost.example")
	if err := login(t, w, &u, phished); !errors.Is(err, mfa.ErrWebAuthn) {
		t.Fatalf("assertion from a wrong origin: err = %v, want ErrWebAuthn", err)
	}
	if err := login(t, w, &u, a); err != nil {
		t.Fatalf("genuine login after the refusal: %v", err)
	}
}

func TestLoginWrongChallengeAndReplay(t *testing.T) {
	w := newRP(t)
	a := mfatest.NewAuthenticator(origin)
	u := register(t, w, newUser(), a)

	opts1, sess1, err := w.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}
	_, sess2, _ := w.BeginLogin(u)
	resp1, err := a.Get(opts1)
	if err != nil {
		t.Fatal(err)
	}
	// Answer to another ceremony's challenge.
	if _, err := w.FinishLogin(u, sess2, resp1); !errors.Is(err, mfa.ErrWebAuthn) {
		t.Fatalf("wrong challenge: err = %v, want ErrWebAuthn", err)
	}
	cred, err := w.FinishLogin(u, sess1, resp1)
	if err != nil {
		t.Fatal(err)
	}
	u.Credentials[0] = cred

	// The same assertion replayed: against a fresh ceremony the challenge
	// differs; against its own (a session the caller failed to discard) the
	// sign count has not increased.
	_, sess3, _ := w.BeginLogin(u)
	if _, err := w.FinishLogin(u, sess3, resp1); !errors.Is(err, mfa.ErrWebAuthn) {
		t.Errorf("replay against a new ceremony: err = %v", err)
	}
	if _, err := w.FinishLogin(u, sess1, resp1); !errors.Is(err, mfa.ErrSignCount) {
		t.Errorf("replay against its own ceremony: err = %v, want ErrSignCount", err)
	}
}

func TestLoginTamperedAssertion(t *testing.T) {
	w := newRP(t)
	a := mfatest.NewAuthenticator(origin)
	u := register(t, w, newUser(), a)
	opts, sess, _ := w.BeginLogin(u)
	resp, err := a.Get(opts)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(resp, &m); err != nil {
		t.Fatal(err)
	}
	r := m["response"].(map[string]any)
	for _, field := range []string{"signature", "authenticatorData", "clientDataJSON"} {
		orig := r[field].(string)
		raw, _ := base64.RawURLEncoding.DecodeString(orig)
		raw[len(raw)-1] ^= 1
		r[field] = base64.RawURLEncoding.EncodeToString(raw)
		bad, _ := json.Marshal(m)
		if _, err := w.FinishLogin(u, sess, bad); !errors.Is(err, mfa.ErrWebAuthn) {
			t.Errorf("tampered %s: err = %v, want ErrWebAuthn", field, err)
		}
		r[field] = orig
	}
	good, _ := json.Marshal(m)
	if _, err := w.FinishLogin(u, sess, good); err != nil {
		t.Errorf("untampered: %v", err)
	}
}

func TestLoginOtherUsersCredential(t *testing.T) {
	w := newRP(t)
	alice := register(t, w, newUser(), mfatest.NewAuthenticator(origin))
	bobKey := mfatest.NewAuthenticator(origin)
	bob := register(t, w, mfa.User{ID: []byte("user-handle-0002"), Name: "bob", DisplayName: "Bob"}, bobKey)

	// Bob's authenticator answers Alice's ceremony (as if allowCredentials
	// were ignored): refused.
	opts, sess, _ := w.BeginLogin(alice)
	var m map[string]map[string]any
	_ = json.Unmarshal(opts, &m)
	delete(m["publicKey"], "allowCredentials")
	loose, _ := json.Marshal(m)
	resp, err := bobKey.Get(loose)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.FinishLogin(alice, sess, resp); !errors.Is(err, mfa.ErrWebAuthn) {
		t.Errorf("bob's key for alice: err = %v, want ErrWebAuthn", err)
	}
	_ = bob
}

func TestClonedAuthenticatorRefused(t *testing.T) {
	w := newRP(t)
	a := mfatest.NewAuthenticator(origin)
	u := register(t, w, newUser(), a)
	clone := a.Clone() // same key, counter 0

	if err := login(t, w, &u, a); err != nil { // counter 1 stored
		t.Fatal(err)
	}
	if err := login(t, w, &u, a); err != nil { // counter 2 stored
		t.Fatal(err)
	}
	err := login(t, w, &u, clone) // presents counter 1
	if !errors.Is(err, mfa.ErrSignCount) || !errors.Is(err, mfa.ErrWebAuthn) {
		t.Fatalf("cloned key: err = %v, want ErrSignCount and ErrWebAuthn", err)
	}
	if got := u.Credentials[0].Authenticator.SignCount; got != 2 {
		t.Errorf("stored sign count moved to %d after a refused login", got)
	}
	// The stored record is not poisoned: the genuine authenticator goes on.
	if err := login(t, w, &u, a); err != nil {
		t.Fatalf("genuine login after a clone was refused: %v", err)
	}
	if strings.Contains(err.Error(), "carer@example.org") {
		t.Error("error text carries the user name")
	}
}

func TestBeginLoginWithoutCredentials(t *testing.T) {
	w := newRP(t)
	if _, _, err := w.BeginLogin(newUser()); !errors.Is(err, mfa.ErrNoCredentials) {
		t.Fatalf("err = %v, want ErrNoCredentials", err)
	}
}

func TestFinishWithBadSession(t *testing.T) {
	w := newRP(t)
	a := mfatest.NewAuthenticator(origin)
	u := register(t, w, newUser(), a)
	opts, _, _ := w.BeginLogin(u)
	resp, _ := a.Get(opts)
	for _, sess := range [][]byte{nil, []byte("{}"), []byte("not json"), []byte(`{"challenge":""}`)} {
		if _, err := w.FinishLogin(u, sess, resp); err == nil {
			t.Errorf("session %q accepted", sess)
		}
		if _, err := w.FinishRegistration(u, sess, resp); err == nil {
			t.Errorf("registration session %q accepted", sess)
		}
	}
}

func TestNewWebAuthnRefuses(t *testing.T) {
	for _, tc := range []struct {
		rpID, name string
		origins    []string
	}{
		{"", "Vigil", []string{origin}},
		{"127.0.0.1", "Vigil", []string{"https://127.0.0.1"}},
		{"localhost", "", []string{origin}},
		{"localhost", "Vigil", nil},
		{"https://localhost", "Vigil", []string{origin}},
	} {
		if _, err := mfa.NewWebAuthn(tc.rpID, tc.name, tc.origins); err == nil {
			t.Errorf("NewWebAuthn(%q, %q, %v) succeeded", tc.rpID, tc.name, tc.origins)
		}
	}
}

func TestUnmarshalCredentialRefuses(t *testing.T) {
	for _, s := range []string{"", "{}", "null", `{"id":"","publicKey":""}`, "[", `{"id":"AQ"}`} {
		if _, err := mfa.UnmarshalCredential(s); err == nil {
			t.Errorf("UnmarshalCredential(%q) succeeded", s)
		}
	}
}
