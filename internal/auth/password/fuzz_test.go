package password

import (
	"errors"
	"slices"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FuzzVerify feeds the PHC parser outside bytes (a stored hash may have
// been written by anything). It must never panic; what it accepts must be
// exactly what encode writes back and within the bounds that keep Verify
// cheap enough to call; what it refuses Verify refuses too. Seeds are in
// testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA", "tide lamp grove")
	f.Fuzz(func(t *testing.T, encoded, pw string) {
		p, salt, key, err := decode(encoded)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error %v does not wrap ErrMalformed", err)
			}
			if _, _, verr := Verify(encoded, pw, DefaultParams()); verr == nil {
				t.Fatalf("decode refused %q but Verify did not", encoded)
			}
			return
		}
		if got := encode(p, salt, key); got != encoded {
			t.Fatalf("decode(%q) then encode = %q", encoded, got)
		}
		if verr := p.validate(); verr != nil {
			t.Fatalf("decode(%q) accepted params %+v: %v", encoded, p, verr)
		}
		if q, err := Parse(encoded); err != nil || q != p {
			t.Fatalf("Parse(%q) = %+v, %v; want %+v", encoded, q, err, p)
		}
		if uint64(p.Memory)*uint64(p.Time)*uint64(p.Threads) > 4096 {
			return // valid, but too dear to hash on every input
		}
		if _, _, err := Verify(encoded, pw, p); err != nil {
			t.Fatalf("Verify(%q) = %v after decode accepted it", encoded, err)
		}
		// The same salt and params with pw's own key: must verify, and
		// need no rehash under the same params.
		own := encode(p, salt, derive(pw, salt, p))
		ok, rehash, err := Verify(own, pw, p)
		if !ok || rehash || err != nil {
			t.Fatalf("Verify(own hash) = %v, %v, %v", ok, rehash, err)
		}
	})
}

var reasons = []string{ReasonShort, ReasonLong, ReasonInvalid, ReasonCommon, ReasonPredictable, ReasonContext}

// FuzzCheck: the policy never panics, answers only with its fixed reasons
// (so never with the password), and answers the same for a password and
// its NFKC form.
func FuzzCheck(f *testing.F) {
	pol := NewPolicy()
	f.Add("Password1!", "")
	f.Add("vigilvigilvigil1", "")
	f.Add("tide lamp grove", "alice@example.org")
	f.Add("alicesmith12345!", "Alice Smith")
	f.Add("ｐａｓｓｗｏｒｄ１２３４５６７８", "")
	f.Fuzz(func(t *testing.T, pw, ctx string) {
		err := pol.Check(pw, ctx)
		reason := ""
		if err != nil {
			var r *Rejection
			if !errors.As(err, &r) {
				t.Fatalf("Check error %T %v is not a *Rejection", err, err)
			}
			if !slices.Contains(reasons, r.Reason) {
				t.Fatalf("Check reason %q is not one of the fixed reasons", r.Reason)
			}
			reason = r.Reason
		} else if n := utf8.RuneCountInString(norm.NFKC.String(pw)); n < MinLen || n > MaxLen {
			t.Fatalf("Check accepted %d characters", n)
		}
		if utf8.ValidString(pw) && len(pw) <= 1024 {
			again := ""
			if err := pol.Check(norm.NFKC.String(pw), ctx); err != nil {
				again = err.(*Rejection).Reason
			}
			if again != reason {
				t.Fatalf("Check(%+q) = %q but its NFKC form gets %q", pw, reason, again)
			}
		}
	})
}
