// Package password hashes and checks user passwords. It stores argon2id
// hashes as PHC strings (security row 19), verifies them in constant time
// and says when a stored hash was made with older parameters and should be
// rewritten, spends the same work on an unknown user as on a real one so
// timing does not reveal who has an account (row 21), and decides whether a
// new password may be used (row 18: at least 15 characters, no truncation,
// a blocklist of common passwords and of context words, no composition
// rules).
//
// Passwords are NFKC-normalised before they are hashed or checked, so the
// same password typed as composed or decomposed Unicode, or with full-width
// forms, matches. Nothing truncates: every character up to MaxLen counts.
//
// It imports only the standard library, golang.org/x/crypto/argon2 and
// golang.org/x/text/unicode/norm: never the store, HTTP, a logger or
// anything else of Vigil's. Nothing here logs, and no error or rejection
// text ever contains a password or a hash.
//
// Hashing at DefaultParams costs about 19 MiB and tens of milliseconds of
// CPU per call: callers cap how many run at once and throttle guessing
// before calling Hash or Verify (package guard).
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Params are argon2id's cost parameters and the sizes of salt and key.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams returns the OWASP minimum for argon2id: 19 MiB, two
// passes, one lane, a 16-byte salt and a 32-byte key.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// AtLeast reports whether every parameter of p is at least floor's.
func (p Params) AtLeast(floor Params) bool {
	return p.Memory >= floor.Memory && p.Time >= floor.Time && p.Threads >= floor.Threads &&
		p.SaltLen >= floor.SaltLen && p.KeyLen >= floor.KeyLen
}

// Bounds on parameters, for hashing and for parsing alike: a stored hash
// cannot make Verify allocate gigabytes or loop for minutes.
const (
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
	maxMemory  = 1 << 21 // KiB: 2 GiB
	maxTime    = 64
	maxEncoded = 256 // bytes of a PHC string at the largest bounds, with room
)

// maxInputBytes bounds the raw password Hash and Verify accept and Check
// considers, before any normalisation work: MaxLen characters of four bytes
// each, decomposed, fit many times over.
const maxInputBytes = 16 << 10

// ErrMalformed is wrapped by errors about a stored hash that is not a PHC
// string this package could have written.
var ErrMalformed = errors.New("password: malformed hash")

// ErrTooLong is returned by Hash for input over 16 KiB: no password that
// Check accepts is that long.
var ErrTooLong = errors.New("password: too long")

func (p Params) validate() error {
	switch {
	case p.Threads < 1:
		return errors.New("threads must be at least 1")
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("memory must be between 8 KiB per thread and %d KiB", maxMemory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("time must be between 1 and %d", maxTime)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length must be between %d and %d bytes", minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length must be between %d and %d bytes", minKeyLen, maxKeyLen)
	}
	return nil
}

// Hash returns pw's argon2id hash under p with a fresh random salt, as a
// PHC string: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>, salt and key in
// unpadded standard base64 as the reference implementation writes them.
func Hash(pw string, p Params) (string, error) {
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	if len(pw) > maxInputBytes {
		return "", fmt.Errorf("hash password: %w", ErrTooLong)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read salt: %w", err)
	}
	return encode(p, salt, derive(pw, salt, p)), nil
}

// Verify reports whether pw matches the PHC string encoded, comparing in
// constant time. needsRehash is true when pw matched but encoded was made
// with parameters other than current: the caller then stores
// Hash(pw, current). An error means encoded is malformed, never that pw is
// wrong. A password over 16 KiB is simply wrong: it is refused before any
// work is spent on it.
func Verify(encoded, pw string, current Params) (ok, needsRehash bool, err error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, false, fmt.Errorf("verify password: %w", err)
	}
	if len(pw) > maxInputBytes {
		return false, false, nil
	}
	ok = subtle.ConstantTimeCompare(derive(pw, salt, p), key) == 1
	return ok, ok && p != current, nil
}

// DummyVerify spends the work of Verify(Hash(…, p), pw, p) on a fixed hash
// that no password matches. Call it for an unknown user so that the answer
// takes as long as for a real user with a wrong password. Invalid p stands
// for DefaultParams.
func DummyVerify(pw string, p Params) {
	if p.validate() != nil {
		p = DefaultParams()
	}
	salt := make([]byte, p.SaltLen)
	for i := range salt {
		salt[i] = byte(i)
	}
	// A key of zeros: argon2id never outputs one in practice, and the
	// answer is thrown away anyway.
	_, _, _ = Verify(encode(p, salt, make([]byte, p.KeyLen)), pw, p)
}

// Parse returns the parameters of a PHC string, with SaltLen and KeyLen
// those of the stored salt and key: for checking stored hashes against a
// minimum (Params.AtLeast).
func Parse(encoded string) (Params, error) {
	p, _, _, err := decode(encoded)
	if err != nil {
		return Params{}, fmt.Errorf("parse password hash: %w", err)
	}
	return p, nil
}

func derive(pw string, salt []byte, p Params) []byte {
	return argon2.IDKey([]byte(norm.NFKC.String(pw)), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

var b64 = base64.RawStdEncoding.Strict()

func encode(p Params, salt, key []byte) string {
	var b strings.Builder
	b.Grow(maxEncoded)
	b.WriteString("$argon2id$v=")
	b.WriteString(strconv.Itoa(argon2.Version))
	b.WriteString("$m=")
	b.WriteString(strconv.FormatUint(uint64(p.Memory), 10))
	b.WriteString(",t=")
	b.WriteString(strconv.FormatUint(uint64(p.Time), 10))
	b.WriteString(",p=")
	b.WriteString(strconv.FormatUint(uint64(p.Threads), 10))
	b.WriteByte('$')
	b.WriteString(b64.EncodeToString(salt))
	b.WriteByte('$')
	b.WriteString(b64.EncodeToString(key))
	return b.String()
}

// decode parses a PHC string strictly: argon2id, version 19, exactly
// m, t and p in that order in canonical decimal, no other parameters,
// unpadded base64 salt and key within bounds; and the string must be
// exactly what encode writes for what it holds.
func decode(s string) (p Params, salt, key []byte, err error) {
	malformed := func(what string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%s: %w", what, ErrMalformed)
	}
	if len(s) > maxEncoded {
		return malformed("too long")
	}
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" {
		return malformed("not a PHC string of 5 fields")
	}
	if f[1] != "argon2id" {
		return malformed("algorithm is not argon2id")
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return malformed("version is not 19")
	}
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return malformed("parameters are not m, t and p")
	}
	var vals [3]uint32
	for i, name := range []string{"m=", "t=", "p="} {
		digits, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return malformed("parameters are not m, t and p")
		}
		v, ok := parseDecimal(digits)
		if !ok {
			return malformed("parameter is not a canonical decimal")
		}
		vals[i] = v
	}
	if vals[2] > 255 {
		return malformed("bad parameters")
	}
	if salt, err = b64.DecodeString(f[4]); err != nil {
		return malformed("salt is not unpadded base64")
	}
	if key, err = b64.DecodeString(f[5]); err != nil {
		return malformed("key is not unpadded base64")
	}
	p = Params{Memory: vals[0], Time: vals[1], Threads: uint8(vals[2]), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	if p.validate() != nil {
		return malformed("bad parameters")
	}
	// The base64 decoder skips newlines; only the canonical form passes.
	if encode(p, salt, key) != s {
		return malformed("not in canonical form")
	}
	return p, salt, key, nil
}

// parseDecimal accepts 1 to 10 ASCII digits with no sign and no leading
// zero, fitting in 32 bits.
func parseDecimal(s string) (uint32, bool) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil
}
