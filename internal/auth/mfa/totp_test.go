package mfa

import (
	"bytes"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// rfcSecret is the SHA-1 seed of RFC 6238 appendix B.
var rfcSecret = []byte("12345678901234567890")

func TestTOTPCodeRFC6238Vectors(t *testing.T) {
	// RFC 6238 appendix B gives 8-digit SHA-1 codes; a 6-digit code is the
	// same truncated value mod 10^6, i.e. its last six digits.
	for _, tc := range []struct {
		unix  int64
		eight string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		got, want := TOTPCode(rfcSecret, time.Unix(tc.unix, 0)), tc.eight[2:]
		if got != want {
			t.Errorf("T=%d: got %s, want %s", tc.unix, got, want)
		}
	}
}

func TestTOTPCodeMatchesPquerna(t *testing.T) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	e, err := NewTOTP("Vigil", "carer@example.org")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range [][]byte{rfcSecret, e.Secret} {
		for _, ts := range []int64{0, 29, 30, 59, 1700000000, 1700000029, 4102444800} {
			tm := time.Unix(ts, 0)
			want, err := totp.GenerateCodeCustom(enc.EncodeToString(secret), tm, totp.ValidateOpts{
				Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
			if err != nil {
				t.Fatal(err)
			}
			if got := TOTPCode(secret, tm); got != want {
				t.Errorf("t=%d: got %s, pquerna %s", ts, got, want)
			}
		}
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 10, 0, time.UTC) // 10 s into a step

func TestVerifyTOTPWindow(t *testing.T) {
	secret := rfcSecret
	now := TOTPStep(t0)
	for _, tc := range []struct {
		name    string
		codeAt  time.Time
		want    error
		wantStp int64
	}{
		{"now", t0, nil, now},
		{"t-30s", t0.Add(-30 * time.Second), nil, now - 1},
		{"t+30s", t0.Add(30 * time.Second), nil, now + 1},
		{"t-60s", t0.Add(-60 * time.Second), ErrInvalidCode, 0},
		{"t-90s", t0.Add(-90 * time.Second), ErrInvalidCode, 0},
		{"t+60s", t0.Add(60 * time.Second), ErrInvalidCode, 0},
		{"t-1h", t0.Add(-time.Hour), ErrInvalidCode, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step, err := VerifyTOTP(secret, TOTPCode(secret, tc.codeAt), t0, 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && step != tc.wantStp {
				t.Errorf("step = %d, want %d", step, tc.wantStp)
			}
		})
	}
}

func TestVerifyTOTPReplay(t *testing.T) {
	secret := rfcSecret
	code := TOTPCode(secret, t0)
	step, err := VerifyTOTP(secret, code, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The same code again, with the step the caller stored the first time.
	if _, err := VerifyTOTP(secret, code, t0.Add(5*time.Second), step); !errors.Is(err, ErrReplay) {
		t.Fatalf("second use: err = %v, want ErrReplay", err)
	}
	// The previous step's code, still inside the window, is also spent.
	prev := TOTPCode(secret, t0.Add(-30*time.Second))
	if _, err := VerifyTOTP(secret, prev, t0, step); !errors.Is(err, ErrReplay) {
		t.Fatalf("older code after a newer one: err = %v, want ErrReplay", err)
	}
	// The next step's code is fresh.
	next := TOTPCode(secret, t0.Add(30*time.Second))
	s2, err := VerifyTOTP(secret, next, t0.Add(30*time.Second), step)
	if err != nil || s2 != step+1 {
		t.Fatalf("next code: step %d, err %v; want %d, nil", s2, err, step+1)
	}
}

func TestVerifyTOTPGarbage(t *testing.T) {
	secret := rfcSecret
	good := TOTPCode(secret, t0)
	for _, code := range []string{
		"", " ", "12345", "1234567", "abcdef", "12345a", "-12345", "+12345", "１２３４５６",
		good + "0", good[:5], "\x00\x00\x00\x00\x00\x00", good + "\n0", "12 34 5",
		strings.Repeat("1", 1000), "0x1234", "123\u00a0456",
	} {
		if _, err := VerifyTOTP(secret, code, t0, 0); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("%q: err = %v, want ErrInvalidCode", code, err)
		}
	}
	// Spaces as authenticator apps display them are fine.
	if _, err := VerifyTOTP(secret, good[:3]+" "+good[3:], t0, 0); err != nil {
		t.Errorf("spaced code refused: %v", err)
	}
	// A short or empty seed is refused rather than accepted with a weak key.
	for _, s := range [][]byte{nil, {}, make([]byte, 15)} {
		if _, err := VerifyTOTP(s, TOTPCode(s, t0), t0, 0); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("seed of %d bytes: err = %v, want ErrInvalidCode", len(s), err)
		}
	}
	// Another user's seed does not verify.
	other, _ := NewTOTP("Vigil", "x")
	if _, err := VerifyTOTP(other.Secret, good, t0, 0); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("other seed: err = %v", err)
	}
}

func TestTOTPStepFloor(t *testing.T) {
	for _, tc := range []struct {
		unix int64
		want int64
	}{{0, 0}, {29, 0}, {30, 1}, {-1, -1}, {-30, -1}, {-31, -2}} {
		if got := TOTPStep(time.Unix(tc.unix, 0)); got != tc.want {
			t.Errorf("TOTPStep(%d) = %d, want %d", tc.unix, got, tc.want)
		}
	}
	// Before the epoch nothing verifies and nothing panics.
	if _, err := VerifyTOTP(rfcSecret, "000000", time.Unix(-3600, 0), 0); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("pre-epoch: %v", err)
	}
}

func TestNewTOTP(t *testing.T) {
	e, err := NewTOTP("Vigil Care", "carer@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Secret) != 20 {
		t.Errorf("secret is %d bytes, want 20", len(e.Secret))
	}
	u, err := url.Parse(e.URI)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" {
		t.Errorf("URI %s is not otpauth://totp/", u.Redacted())
	}
	q := u.Query()
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	if got, want := q.Get("secret"), enc.EncodeToString(e.Secret); got != want {
		t.Error("URI secret does not match Secret")
	}
	for k, want := range map[string]string{"issuer": "Vigil Care", "algorithm": "SHA1", "digits": "6", "period": "30"} {
		if got := q.Get(k); got != want {
			t.Errorf("URI %s = %q, want %q", k, got, want)
		}
	}
	if got, want := u.Path, "/Vigil Care:carer@example.org"; got != want {
		t.Errorf("label = %q, want %q", got, want)
	}

	img, err := png.Decode(bytes.NewReader(e.PNG))
	if err != nil {
		t.Fatalf("PNG does not decode: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 100 || b.Dx() > 1000 || b.Dx() != b.Dy() {
		t.Errorf("QR image is %dx%d, want square between 100 and 1000", b.Dx(), b.Dy())
	}
	if len(e.PNG) > 64<<10 {
		t.Errorf("PNG is %d bytes", len(e.PNG))
	}

	// The enrolment verifies its own codes.
	if _, err := VerifyTOTP(e.Secret, TOTPCode(e.Secret, t0), t0, 0); err != nil {
		t.Errorf("own code refused: %v", err)
	}
	// Two enrolments never share a seed.
	e2, _ := NewTOTP("Vigil Care", "carer@example.org")
	if bytes.Equal(e.Secret, e2.Secret) {
		t.Error("two enrolments share a seed")
	}
}

func TestNewTOTPRefuses(t *testing.T) {
	for _, tc := range [][2]string{{"", "a"}, {"Vigil", ""}, {"Vi:gil", "a"}} {
		if _, err := NewTOTP(tc[0], tc[1]); err == nil {
			t.Errorf("NewTOTP(%q, %q) succeeded", tc[0], tc[1])
		}
	}
}

func TestTOTPEnrolmentRedacted(t *testing.T) {
	e, err := NewTOTP("Vigil", "carer@example.org")
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("enrol", "totp", e)
	out := fmt.Sprintf("%v %+v %#v %s", e, e, e, e) + logged.String()
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(e.Secret)
	for _, leak := range []string{enc, e.URI, fmt.Sprint(e.Secret), fmt.Sprintf("%x", e.Secret), "carer@example.org"} {
		if strings.Contains(out, leak) {
			t.Fatalf("enrolment printed %q", leak)
		}
	}
}
