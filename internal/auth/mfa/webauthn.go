package mfa

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// ceremonyTimeout is how long the browser is given, and how long a session
// from a Begin call stays valid (enforced on Finish with the wall clock).
const ceremonyTimeout = 5 * time.Minute

// maxResponse bounds the browser's response before it is parsed; real
// responses are a few kilobytes.
const maxResponse = 64 << 10

// WebAuthn runs registration and login ceremonies for one relying party.
// A session from a Begin call expires after 5 minutes of wall-clock time
// (go-webauthn checks it with time.Now); a caller on a fake clock keeps its
// own deadline as well, and must use each session at most once.
type WebAuthn struct {
	wa *webauthn.WebAuthn
}

// NewWebAuthn configures a relying party: rpID is the registrable domain the
// credentials are scoped to (e.g. "vigil.example.org" or "localhost"; never
// an IP address), origins the exact origins the pages run on
// ("https://vigil.example.org:8443").
func NewWebAuthn(rpID, rpDisplayName string, origins []string) (*WebAuthn, error) {
	if rpID == "" {
		return nil, errors.New("mfa: webauthn: empty relying party id")
	}
	if rpDisplayName == "" {
		return nil, errors.New("mfa: webauthn: empty relying party display name")
	}
	if len(origins) == 0 {
		return nil, errors.New("mfa: webauthn: no origins")
	}
	timeout := webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTimeout, TimeoutUVD: ceremonyTimeout}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  rpID,
		RPDisplayName:         rpDisplayName,
		RPOrigins:             slices.Clone(origins),
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementPreferred,
			RequireResidentKey: protocol.ResidentKeyNotRequired(),
			UserVerification:   protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("mfa: webauthn: %w", err)
	}
	return &WebAuthn{wa: wa}, nil
}

// User is the account a ceremony is for. ID is the WebAuthn user handle:
// at most 64 opaque bytes, stable for the account and not personal data
// (not the e-mail address). Credentials are the account's registered
// credentials (UnmarshalCredential).
type User struct {
	ID          []byte
	Name        string
	DisplayName string
	Credentials []webauthn.Credential
}

var _ webauthn.User = User{}

// WebAuthnID implements webauthn.User.
func (u User) WebAuthnID() []byte { return u.ID }

// WebAuthnName implements webauthn.User.
func (u User) WebAuthnName() string { return u.Name }

// WebAuthnDisplayName implements webauthn.User.
func (u User) WebAuthnDisplayName() string { return u.DisplayName }

// WebAuthnCredentials implements webauthn.User.
func (u User) WebAuthnCredentials() []webauthn.Credential { return u.Credentials }

// BeginRegistration starts adding a credential to u. options is the JSON for
// navigator.credentials.create ({"publicKey": …}, binary fields base64url);
// session is kept server-side and passed to FinishRegistration once.
// u's existing credentials are excluded, so an authenticator cannot be
// registered twice.
func (w *WebAuthn) BeginRegistration(u User) (options, session []byte, err error) {
	creation, sd, err := w.wa.BeginRegistration(u,
		webauthn.WithExclusions(webauthn.Credentials(u.Credentials).CredentialDescriptors()))
	if err != nil {
		return nil, nil, fmt.Errorf("mfa: begin registration: %w", err)
	}
	return marshalCeremony("begin registration", creation, sd)
}

// FinishRegistration verifies the browser's response to the options from
// BeginRegistration and returns the new credential, for the caller to store
// (MarshalCredential, sealed). A refused response wraps ErrWebAuthn.
func (w *WebAuthn) FinishRegistration(u User, session, response []byte) (webauthn.Credential, error) {
	sd, err := unmarshalSession(session)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("mfa: finish registration: %w", err)
	}
	if len(response) > maxResponse {
		return webauthn.Credential{}, fmt.Errorf("finish registration: response of %d bytes: %w", len(response), ErrWebAuthn)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("finish registration: %w: %w", ErrWebAuthn, err)
	}
	cred, err := w.wa.CreateCredential(u, sd, parsed)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("finish registration: %w: %w", ErrWebAuthn, err)
	}
	for _, c := range u.Credentials {
		if bytes.Equal(c.ID, cred.ID) {
			return webauthn.Credential{}, fmt.Errorf("finish registration: credential already registered: %w", ErrWebAuthn)
		}
	}
	return *cred, nil
}

// BeginLogin starts a login with one of u's credentials (ErrNoCredentials if
// u has none). options is the JSON for navigator.credentials.get; session
// is kept server-side and passed to FinishLogin once.
func (w *WebAuthn) BeginLogin(u User) (options, session []byte, err error) {
	if len(u.Credentials) == 0 {
		return nil, nil, ErrNoCredentials
	}
	assertion, sd, err := w.wa.BeginLogin(u)
	if err != nil {
		return nil, nil, fmt.Errorf("mfa: begin login: %w", err)
	}
	return marshalCeremony("begin login", assertion, sd)
}

// FinishLogin verifies the browser's assertion for the options from
// BeginLogin and returns the credential used, with its new sign count and
// flags, which the caller must store. A refused response wraps ErrWebAuthn;
// a signature counter that did not increase also wraps ErrSignCount.
func (w *WebAuthn) FinishLogin(u User, session, response []byte) (webauthn.Credential, error) {
	sd, err := unmarshalSession(session)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("mfa: finish login: %w", err)
	}
	if len(response) > maxResponse {
		return webauthn.Credential{}, fmt.Errorf("finish login: response of %d bytes: %w", len(response), ErrWebAuthn)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("finish login: %w: %w", ErrWebAuthn, err)
	}
	// The library marks a counter regression with CloneWarning rather than
	// failing; start from a clean flag so the check below sees only this
	// login, and never touch the caller's slice.
	creds := slices.Clone(u.Credentials)
	for i := range creds {
		creds[i].Authenticator.CloneWarning = false
	}
	u.Credentials = creds
	cred, err := w.wa.ValidateLogin(u, sd, parsed)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("finish login: %w: %w", ErrWebAuthn, err)
	}
	if cred.Authenticator.CloneWarning {
		return webauthn.Credential{}, fmt.Errorf("finish login: sign count %d not above stored %d: %w: %w",
			parsed.Response.AuthenticatorData.Counter, cred.Authenticator.SignCount, ErrWebAuthn, ErrSignCount)
	}
	return *cred, nil
}

// MarshalCredential encodes a credential record as JSON text for storage.
func MarshalCredential(c webauthn.Credential) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("mfa: marshal credential: %w", err)
	}
	return string(b), nil
}

// UnmarshalCredential decodes a record written by MarshalCredential.
func UnmarshalCredential(s string) (webauthn.Credential, error) {
	var c webauthn.Credential
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return webauthn.Credential{}, fmt.Errorf("mfa: unmarshal credential: %w", err)
	}
	if len(c.ID) == 0 || len(c.PublicKey) == 0 {
		return webauthn.Credential{}, errors.New("mfa: unmarshal credential: missing id or public key")
	}
	return c, nil
}

func marshalCeremony(op string, options any, sd *webauthn.SessionData) ([]byte, []byte, error) {
	o, err := json.Marshal(options)
	if err != nil {
		return nil, nil, fmt.Errorf("mfa: %s: %w", op, err)
	}
	s, err := json.Marshal(sd)
	if err != nil {
		return nil, nil, fmt.Errorf("mfa: %s: %w", op, err)
	}
	return o, s, nil
}

func unmarshalSession(b []byte) (webauthn.SessionData, error) {
	var sd webauthn.SessionData
	if err := json.Unmarshal(b, &sd); err != nil {
		return sd, fmt.Errorf("bad session: %w", err)
	}
	if sd.Challenge == "" {
		return sd, errors.New("bad session: no challenge")
	}
	return sd, nil
}
