package mfa

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"image/png"
	"log/slog"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

const (
	totpSecretLen = 20 // 160 bits, RFC 4226 §4 recommendation
	totpMinSecret = 16 // 128 bits: the least VerifyTOTP accepts
	totpDigits    = 6
	totpPeriod    = 30 // seconds
	totpSkew      = 1  // steps either side of now
	totpQRSize    = 200
)

// TOTPEnrolment is a new TOTP seed and the two ways to hand it to an
// authenticator app. Secret must be sealed before it is stored; URI and PNG
// contain it too and must only go to the enrolling user. It prints without
// any of them.
type TOTPEnrolment struct {
	Secret []byte // raw seed, 20 bytes
	URI    string // otpauth://totp/Issuer:account?secret=…
	PNG    []byte // QR code of URI, 200×200
}

// String hides the seed.
func (e TOTPEnrolment) String() string { return "mfa.TOTPEnrolment(redacted)" }

// GoString hides the seed from %#v.
func (e TOTPEnrolment) GoString() string { return e.String() }

// LogValue hides the seed from slog.
func (e TOTPEnrolment) LogValue() slog.Value { return slog.StringValue(e.String()) }

// NewTOTP makes a random 160-bit seed for account at issuer, with its
// otpauth:// URI and a QR code of it.
func NewTOTP(issuer, account string) (TOTPEnrolment, error) {
	if issuer == "" || account == "" {
		return TOTPEnrolment{}, errors.New("mfa: new totp: issuer and account must not be empty")
	}
	if strings.Contains(issuer, ":") {
		return TOTPEnrolment{}, errors.New("mfa: new totp: issuer must not contain ':'")
	}
	secret := make([]byte, totpSecretLen)
	if _, err := rand.Read(secret); err != nil {
		return TOTPEnrolment{}, fmt.Errorf("mfa: new totp: %w", err)
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      totpPeriod,
		Secret:      secret,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("mfa: new totp: %w", err)
	}
	img, err := key.Image(totpQRSize, totpQRSize)
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("mfa: new totp: qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return TOTPEnrolment{}, fmt.Errorf("mfa: new totp: qr code: %w", err)
	}
	return TOTPEnrolment{Secret: secret, URI: key.URL(), PNG: buf.Bytes()}, nil
}

// TOTPStep is the RFC 6238 time step of t (30 s steps since the Unix epoch).
func TOTPStep(t time.Time) int64 {
	u := t.Unix()
	s := u / totpPeriod
	if u < 0 && u%totpPeriod != 0 {
		s-- // floor, not truncation
	}
	return s
}

// TOTPCode is the 6-digit code for secret at time t.
func TOTPCode(secret []byte, t time.Time) string {
	s := TOTPStep(t)
	if s < 0 {
		s = 0
	}
	c := hotp(secret, uint64(s))
	return string(c[:])
}

// VerifyTOTP checks code against secret for the time steps now-1, now and
// now+1 and returns the step it matched. A match for a step at or before
// lastStep (the step the caller stored after the last accepted code; 0 if
// none) is ErrReplay; anything else that does not match is ErrInvalidCode.
// Spaces in code are ignored ("123 456"). The caller must store the
// returned step atomically before treating the code as accepted.
func VerifyTOTP(secret []byte, code string, now time.Time, lastStep int64) (step int64, err error) {
	if len(secret) < totpMinSecret {
		return 0, fmt.Errorf("verify totp: seed of %d bytes is too short: %w", len(secret), ErrInvalidCode)
	}
	if len(code) > 32 {
		return 0, ErrInvalidCode
	}
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != totpDigits {
		return 0, ErrInvalidCode
	}
	for i := range len(code) {
		if code[i] < '0' || code[i] > '9' {
			return 0, ErrInvalidCode
		}
	}
	cur := TOTPStep(now)
	var (
		best    int64
		matched bool
		replay  bool
	)
	// Every candidate is computed and compared, whatever matched first.
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		if s < 0 {
			continue
		}
		want := hotp(secret, uint64(s))
		if subtle.ConstantTimeCompare(want[:], []byte(code)) == 1 {
			if s > lastStep {
				best, matched = s, true
			} else {
				replay = true
			}
		}
	}
	switch {
	case matched:
		return best, nil
	case replay:
		return 0, ErrReplay
	default:
		return 0, ErrInvalidCode
	}
}

// hotp is RFC 4226 HOTP with HMAC-SHA-1 and 6 digits.
func hotp(secret []byte, counter uint64) [totpDigits]byte {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac := hmac.New(sha1.New, secret)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	var out [totpDigits]byte
	for i := totpDigits - 1; i >= 0; i-- {
		out[i] = byte('0' + v%10)
		v /= 10
	}
	return out
}
