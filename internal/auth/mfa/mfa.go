// Package mfa is the second factor of sign-in: TOTP (RFC 6238), one-time
// recovery codes and WebAuthn (passkeys and security keys). It holds the
// cryptography and the ceremonies only; internal/auth decides who must use
// which factor, keeps the state and writes the audit log.
//
// TOTP: SHA-1, 6 digits, 30 s steps, a 160-bit seed, one step of skew either
// way. VerifyTOTP returns the time step a code matched; the caller persists
// it (atomically, with a compare-and-set) and passes it back as lastStep, so
// every code is single use (ErrReplay).
//
// Recovery codes: 100 bits each, shown once, stored only as SHA-256 hashes
// (a fast hash is enough for codes of that entropy).
//
// WebAuthn wraps github.com/go-webauthn/webauthn with the options Vigil
// uses (no attestation, user verification and resident keys "preferred",
// existing credentials excluded at registration) and with byte-slice inputs
// and outputs: the options go to the browser as JSON, the session bytes stay
// on the server (they carry the challenge and must be used once and then
// discarded), the browser's response comes back as JSON. A sign-count
// regression (a cloned authenticator) fails the login with ErrSignCount.
//
// Secrets: TOTP seeds and credential records are sealed by the caller
// (internal/seal) before they are stored; TOTPEnrolment prints without its
// seed. Nothing here logs.
//
// Must not import: store drivers, the bus, HTTP servers, internal/seal or
// any other Vigil package, nor "testing" (deps_test.go); it depends on the
// standard library, github.com/pquerna/otp and github.com/go-webauthn/webauthn
// only. (net/http is linked in by go-webauthn's request-parsing helpers,
// which are not used: responses arrive here as bytes.) Everything here is
// safe for concurrent use and starts no goroutine. The subpackage mfatest
// is a software authenticator for tests and the simulator.
package mfa

import "errors"

// Errors callers classify.
var (
	// ErrInvalidCode is a TOTP code that is malformed or matches none of the
	// accepted time steps.
	ErrInvalidCode = errors.New("mfa: invalid code")
	// ErrReplay is a TOTP code for a time step that was already used.
	ErrReplay = errors.New("mfa: code already used")
	// ErrWebAuthn is any refused WebAuthn response: malformed, wrong
	// challenge, origin, RP ID, signature, user or credential.
	ErrWebAuthn = errors.New("mfa: webauthn verification failed")
	// ErrSignCount is a login whose signature counter did not increase: the
	// authenticator may have been cloned. It is returned wrapped together
	// with ErrWebAuthn.
	ErrSignCount = errors.New("mfa: signature counter did not increase; the authenticator may be cloned")
	// ErrNoCredentials is BeginLogin for a user without WebAuthn credentials.
	ErrNoCredentials = errors.New("mfa: no webauthn credentials")
)
