package password_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"vigil/internal/auth/password"
)

func TestCheck(t *testing.T) {
	pol := password.NewPolicy()
	user := []string{"alice.smith@sunrise-care.org.uk", "Alice Smith", "Sunrise Care Homes"}
	for _, tc := range []struct {
		pw   string
		ctx  []string
		want string // a Reason, or "" for accepted
	}{
		// Security row 18's cases.
		{"Password1!", nil, password.ReasonShort},
		{"vigilvigilvigil1", nil, password.ReasonPredictable},
		{"tide lamp grove", nil, ""}, // 15 characters
		{"tide lamp grov", nil, password.ReasonShort},

		// Length counts characters after NFKC, not bytes.
		{"cre\u0300me bru\u0302le\u0301e a\u0300", nil, password.ReasonShort}, // 17 runes NFD, 14 NFC
		{"cre\u0300me bru\u0302le\u0301e a\u0300l", nil, ""},
		{"日本語のパスワードです十五文字", nil, ""},
		{strings.Repeat("ab", 7), nil, password.ReasonShort},
		{"\xff\xfe" + strings.Repeat("q", 20), nil, password.ReasonInvalid},

		// The blocklist: listed, with digits or symbols around, with
		// separators, in full-width forms, any case.
		{"password12345678", nil, password.ReasonCommon},
		{"PASSWORD12345678", nil, password.ReasonCommon},
		{"!!!iloveyou2024!!", nil, password.ReasonCommon},
		{"i love you 123456", nil, password.ReasonCommon},
		{"ｐａｓｓｗｏｒｄ１２３４５６７８", nil, password.ReasonCommon},
		{"123456789!!!!!!", nil, password.ReasonCommon},
		{"2020qwertyuiop!!", nil, password.ReasonCommon},
		// …but a random number is not "123456" with digits added.
		{"839201746281935", nil, ""},

		// Repeated units and runs.
		{"aaaaaaaaaaaaaaaa", nil, password.ReasonPredictable},
		{"abcdefghijklmnopq", nil, password.ReasonPredictable},
		{"98765432109876543", nil, password.ReasonPredictable},
		{"xk3!qz9pxk3!qz9pxk3", nil, password.ReasonPredictable},
		{"tide lamp grove tide lamp grove", nil, password.ReasonPredictable}, // "tidelampgrove" twice
		{"rivers of oats and copper rivers of oats and copper", nil, ""},     // the unit alone would pass

		// Context words: the user's e-mail, name, organisation, and Vigil.
		{"alicesmith12345!", user, password.ReasonContext},
		{"Smith.Alice.1987", user, password.ReasonContext},
		{"sunrisecare2024!", user, password.ReasonContext},
		{"sunrisecare 738291046510", user, password.ReasonContext}, // a context word and digits
		{"VigilVigil 2024!", nil, password.ReasonPredictable},
		{"sunrise care 2024!", user, password.ReasonContext},
		{"alice walks to the harbour", user, ""},
		{"alicesmith12345!", nil, ""}, // not this user's name
		// Words under four characters do not count.
		{"bob and eve at sea", []string{"bob@sea.io"}, ""},

		// No composition rules: no digit, capital or symbol is asked for.
		{"rivers of oats and copper", nil, ""},
	} {
		err := pol.Check(tc.pw, tc.ctx...)
		got := ""
		if err != nil {
			var r *password.Rejection
			if !errors.As(err, &r) {
				t.Fatalf("Check(%q) error %T %v, want *Rejection", tc.pw, err, err)
			}
			got = r.Reason
			if strings.Contains(err.Error(), tc.pw) {
				t.Errorf("Check(%q) error %q contains the password", tc.pw, err)
			}
		}
		if got != tc.want {
			t.Errorf("Check(%q, %q) = %q, want %q", tc.pw, tc.ctx, got, tc.want)
		}
	}
}

// No truncation and no short upper limit: 128 and MaxLen characters are
// accepted, one more is not.
func TestCheckLength(t *testing.T) {
	pol := password.NewPolicy()
	r := rand.New(rand.NewPCG(1, 2))
	gen := func(n int) string {
		const alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	for _, n := range []int{15, 64, 128, 1000, password.MaxLen} {
		if err := pol.Check(gen(n)); err != nil {
			t.Errorf("Check(%d random characters) = %v", n, err)
		}
	}
	if err := pol.Check(gen(password.MaxLen + 1)); err == nil || err.(*password.Rejection).Reason != password.ReasonLong {
		t.Errorf("Check(%d characters) = %v, want %q", password.MaxLen+1, err, password.ReasonLong)
	}
	if err := pol.Check(strings.Repeat("é", 20<<10)); err == nil {
		t.Errorf("Check(40 KiB) accepted")
	}
}

// The embedded list loads whole: 100,000 entries, the best-known ones
// among them.
func TestBlocklistLoaded(t *testing.T) {
	pol := password.NewPolicy()
	for _, w := range []string{"123456", "password", "qwerty", "dragon", "iloveyou", "trustno1", "1qaz2wsx3edc", "070162"} {
		// Each listed password with symbols appended to 15 characters.
		pw := w + strings.Repeat("!", max(1, 15-len(w)))
		if err := pol.Check(pw); err == nil {
			t.Errorf("Check(%q) accepted a listed password %q", pw, w)
		}
	}
}

func BenchmarkNewPolicy(b *testing.B) {
	for b.Loop() {
		password.NewPolicy()
	}
}

func BenchmarkCheck(b *testing.B) {
	pol := password.NewPolicy()
	ctx := []string{"alice.smith@sunrise-care.org.uk", "Alice Smith", "Sunrise Care Homes"}
	for b.Loop() {
		pol.Check("rivers of oats and copper 1987!", ctx...)
	}
}
