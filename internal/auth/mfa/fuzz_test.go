package mfa_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"vigil/internal/auth/mfa"
)

// fuzzNow is the fixed "now" of FuzzVerifyTOTP; the seeds hold its code.
var fuzzNow = time.Date(2026, 3, 1, 12, 0, 10, 0, time.UTC)

// FuzzVerifyTOTP feeds VerifyTOTP arbitrary codes and stored steps: it must
// not panic, must answer only nil, ErrInvalidCode or ErrReplay, and must
// accept only the genuine code of a step inside the window and after
// lastStep.
func FuzzVerifyTOTP(f *testing.F) {
	secret := []byte("12345678901234567890")
	cur := mfa.TOTPStep(fuzzNow)
	f.Add(mfa.TOTPCode(secret, fuzzNow), int64(0))
	f.Fuzz(func(t *testing.T, code string, lastStep int64) {
		step, err := mfa.VerifyTOTP(secret, code, fuzzNow, lastStep)
		switch {
		case err == nil:
			if step < cur-1 || step > cur+1 || step <= lastStep {
				t.Fatalf("accepted step %d (now %d, last %d)", step, cur, lastStep)
			}
			if got := strings.ReplaceAll(code, " ", ""); got != mfa.TOTPCode(secret, time.Unix(step*30, 0)) {
				t.Fatalf("accepted %q, not the code of step %d", code, step)
			}
		case errors.Is(err, mfa.ErrInvalidCode), errors.Is(err, mfa.ErrReplay):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// loginFixture is a registered credential and a login session (fixed
// challenge, no expiry) that the FuzzFinishLogin seed "valid" answers.
func loginFixture(t testing.TB) (*mfa.WebAuthn, mfa.User, []byte) {
	t.Helper()
	w, err := mfa.NewWebAuthn(rpID, "Vigil", []string{origin})
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join("testdata", "fuzzlogin", "credential.json"))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := mfa.UnmarshalCredential(string(text))
	if err != nil {
		t.Fatal(err)
	}
	sess, err := os.ReadFile(filepath.Join("testdata", "fuzzlogin", "session.json"))
	if err != nil {
		t.Fatal(err)
	}
	u := newUser()
	u.Credentials = []webauthn.Credential{cred}
	return w, u, sess
}

// FuzzFinishLogin feeds FinishLogin arbitrary browser responses for a real
// credential and session: it must not panic, every refusal must wrap
// ErrWebAuthn, and an accepted response must be for the registered
// credential with a higher sign count.
func FuzzFinishLogin(f *testing.F) {
	w, u, sess := loginFixture(f)
	stored := u.Credentials[0]
	f.Fuzz(func(t *testing.T, response []byte) {
		cred, err := w.FinishLogin(u, sess, response)
		if err != nil {
			if !errors.Is(err, mfa.ErrWebAuthn) {
				t.Fatalf("refusal %v does not wrap ErrWebAuthn", err)
			}
			return
		}
		if !bytes.Equal(cred.ID, stored.ID) || !bytes.Equal(cred.PublicKey, stored.PublicKey) {
			t.Fatal("accepted a response for another credential")
		}
		if cred.Authenticator.SignCount <= stored.Authenticator.SignCount {
			t.Fatalf("accepted sign count %d after %d", cred.Authenticator.SignCount, stored.Authenticator.SignCount)
		}
	})
}

// TestFuzzFinishLoginSeedIsValid keeps the corpus meaningful: the "valid"
// seed must pass, so the fuzzer mutates a response that reaches the
// signature check.
func TestFuzzFinishLoginSeedIsValid(t *testing.T) {
	w, u, sess := loginFixture(t)
	data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzFinishLogin", "valid"))
	if err != nil {
		t.Fatal(err)
	}
	resp := seedBytes(t, data)
	cred, err := w.FinishLogin(u, sess, resp)
	if err != nil {
		t.Fatalf("valid seed refused: %v", err)
	}
	if cred.Authenticator.SignCount != 1 {
		t.Errorf("sign count %d, want 1", cred.Authenticator.SignCount)
	}
}

// seedBytes decodes the single []byte("…") value of a corpus file.
func seedBytes(t *testing.T, file []byte) []byte {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(file)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		t.Fatalf("not a one-value corpus file: %q", file)
	}
	v := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
	s, err := strconv.Unquote(v)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}
