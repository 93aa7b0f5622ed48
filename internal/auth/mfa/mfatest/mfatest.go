// Package mfatest is a software WebAuthn authenticator together with the
// browser half of the ceremony, for tests and the simulator: it turns the
// options JSON from mfa.WebAuthn.BeginRegistration / BeginLogin (what a
// page would pass to navigator.credentials.create / get) into the response
// JSON a browser would post back.
//
// Credentials are ES256 (ECDSA P-256) keys with "none" attestation, an
// all-zero AAGUID, the UP, UV and (at registration) AT flags, and a
// signature counter that starts at 0 and increases by one per assertion.
// Clone copies keys and counters so a test can show that a cloned key's
// counter regression is refused.
//
// Unlike a browser it does not check that the options' rp.id belongs to its
// origin, so tests can present responses from a wrong origin or for a
// wrong RP ID to the server. It does honour excludeCredentials and
// allowCredentials.
//
// Must not import "testing" or any Vigil package: it is used by other
// packages' integration tests and by the simulator binary, and depends on
// the standard library only. An Authenticator is safe for concurrent use.
package mfatest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
)

// Flags in authenticator data (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagAT = 0x40
)

const algES256 = -7

// ErrExcluded is Create for options whose excludeCredentials names a
// credential this authenticator holds (the browser's InvalidStateError).
var ErrExcluded = errors.New("mfatest: authenticator already registered (excludeCredentials)")

// ErrNoCredential is Get when the authenticator holds no usable credential
// (the browser's NotAllowedError).
var ErrNoCredential = errors.New("mfatest: no matching credential")

type credential struct {
	id         []byte
	rpID       string
	userHandle []byte
	key        *ecdsa.PrivateKey
	counter    uint32
}

// Authenticator is a software authenticator plus client at one origin.
type Authenticator struct {
	mu     sync.Mutex
	origin string
	creds  []*credential
}

// NewAuthenticator returns an authenticator with no credentials whose
// client data carries origin (e.g. "https://localhost:8443").
func NewAuthenticator(origin string) *Authenticator {
	return &Authenticator{origin: origin}
}

// SetOrigin changes the origin later responses claim, e.g. to show that a
// response from a phishing origin is refused.
func (a *Authenticator) SetOrigin(origin string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.origin = origin
}

// Clone returns an independent authenticator with the same origin, the same
// keys and the same counters, as an attacker who copied the key would have.
func (a *Authenticator) Clone() *Authenticator {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := &Authenticator{origin: a.origin}
	for _, cr := range a.creds {
		cp := *cr
		cp.id = bytes.Clone(cr.id)
		cp.userHandle = bytes.Clone(cr.userHandle)
		c.creds = append(c.creds, &cp)
	}
	return c
}

// Credentials is how many credentials the authenticator holds.
func (a *Authenticator) Credentials() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.creds)
}

// b64 is base64url without padding, the encoding of every binary field in
// WebAuthn JSON.
type b64 []byte

func (b b64) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

func (b *b64) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	v, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

type descriptor struct {
	Type string `json:"type"`
	ID   b64    `json:"id"`
}

type creationOptions struct {
	RP struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"rp"`
	User struct {
		ID b64 `json:"id"`
	} `json:"user"`
	Challenge b64 `json:"challenge"`
	Params    []struct {
		Type string `json:"type"`
		Alg  int    `json:"alg"`
	} `json:"pubKeyCredParams"`
	Exclude []descriptor `json:"excludeCredentials"`
}

type requestOptions struct {
	Challenge b64          `json:"challenge"`
	RPID      string       `json:"rpId"`
	Allow     []descriptor `json:"allowCredentials"`
}

// unwrap accepts both {"publicKey": {...}} and the bare options.
func unwrap(data []byte, v any) error {
	var outer struct {
		PublicKey json.RawMessage `json:"publicKey"`
	}
	if err := json.Unmarshal(data, &outer); err != nil {
		return err
	}
	if len(outer.PublicKey) > 0 {
		data = outer.PublicKey
	}
	return json.Unmarshal(data, v)
}

type clientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	Origin      string `json:"origin"`
	CrossOrigin bool   `json:"crossOrigin"`
}

func (a *Authenticator) clientDataJSON(typ string, challenge []byte) ([]byte, error) {
	return json.Marshal(clientData{
		Type:      typ,
		Challenge: base64.RawURLEncoding.EncodeToString(challenge),
		Origin:    a.origin,
	})
}

// rpIDFor is options.rp.id, or the origin's host when it is absent (the
// browser's default).
func (a *Authenticator) rpIDFor(rpID string) (string, error) {
	if rpID != "" {
		return rpID, nil
	}
	u, err := url.Parse(a.origin)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("mfatest: no rp id and origin %q has no host", a.origin)
	}
	return u.Hostname(), nil
}

type registrationResponse struct {
	ID                      string `json:"id"`
	RawID                   b64    `json:"rawId"`
	Type                    string `json:"type"`
	AuthenticatorAttachment string `json:"authenticatorAttachment"`
	Response                struct {
		ClientDataJSON    b64      `json:"clientDataJSON"`
		AttestationObject b64      `json:"attestationObject"`
		Transports        []string `json:"transports"`
	} `json:"response"`
	ClientExtensionResults struct{} `json:"clientExtensionResults"`
}

// Create makes a new ES256 credential for the creation options (the JSON
// from BeginRegistration) and returns the registration response JSON.
func (a *Authenticator) Create(optionsJSON []byte) ([]byte, error) {
	var o creationOptions
	if err := unwrap(optionsJSON, &o); err != nil {
		return nil, fmt.Errorf("mfatest: create: options: %w", err)
	}
	if len(o.Challenge) == 0 {
		return nil, errors.New("mfatest: create: options have no challenge")
	}
	es256 := false
	for _, p := range o.Params {
		es256 = es256 || (p.Type == "public-key" && p.Alg == algES256)
	}
	if !es256 {
		return nil, errors.New("mfatest: create: ES256 not among pubKeyCredParams")
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	rpID, err := a.rpIDFor(o.RP.ID)
	if err != nil {
		return nil, err
	}
	for _, ex := range o.Exclude {
		for _, c := range a.creds {
			if c.rpID == rpID && bytes.Equal(c.id, ex.ID) {
				return nil, ErrExcluded
			}
		}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mfatest: create: %w", err)
	}
	c := &credential{id: make([]byte, 32), rpID: rpID, userHandle: bytes.Clone(o.User.ID), key: key}
	if _, err := rand.Read(c.id); err != nil {
		return nil, fmt.Errorf("mfatest: create: %w", err)
	}
	cdj, err := a.clientDataJSON("webauthn.create", o.Challenge)
	if err != nil {
		return nil, err
	}
	cose, err := coseES256(&key.PublicKey)
	if err != nil {
		return nil, err
	}

	// authData = rpIdHash | flags | signCount | AAGUID | credIdLen | credId | COSE key
	rpHash := sha256.Sum256([]byte(rpID))
	ad := append([]byte(nil), rpHash[:]...)
	ad = append(ad, flagUP|flagUV|flagAT)
	ad = binary.BigEndian.AppendUint32(ad, c.counter)
	ad = append(ad, make([]byte, 16)...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(c.id)))
	ad = append(ad, c.id...)
	ad = append(ad, cose...)

	// attestationObject = {"fmt": "none", "attStmt": {}, "authData": ad},
	// keys in CTAP2 canonical order (shorter first).
	var att cbor
	att.head(majorMap, 3)
	att.text("fmt")
	att.text("none")
	att.text("attStmt")
	att.head(majorMap, 0)
	att.text("authData")
	att.bytes(ad)

	var r registrationResponse
	r.ID = base64.RawURLEncoding.EncodeToString(c.id)
	r.RawID = c.id
	r.Type = "public-key"
	r.AuthenticatorAttachment = "platform"
	r.Response.ClientDataJSON = cdj
	r.Response.AttestationObject = att.b
	r.Response.Transports = []string{"internal"}
	out, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("mfatest: create: %w", err)
	}
	a.creds = append(a.creds, c)
	return out, nil
}

type assertionResponse struct {
	ID                      string `json:"id"`
	RawID                   b64    `json:"rawId"`
	Type                    string `json:"type"`
	AuthenticatorAttachment string `json:"authenticatorAttachment"`
	Response                struct {
		ClientDataJSON    b64 `json:"clientDataJSON"`
		AuthenticatorData b64 `json:"authenticatorData"`
		Signature         b64 `json:"signature"`
		UserHandle        b64 `json:"userHandle,omitempty"`
	} `json:"response"`
	ClientExtensionResults struct{} `json:"clientExtensionResults"`
}

// Get signs an assertion for the request options (the JSON from
// BeginLogin) with the first credential it holds for the RP ID that the
// options allow (any, if they list none), incrementing that credential's
// counter, and returns the assertion response JSON.
func (a *Authenticator) Get(optionsJSON []byte) ([]byte, error) {
	var o requestOptions
	if err := unwrap(optionsJSON, &o); err != nil {
		return nil, fmt.Errorf("mfatest: get: options: %w", err)
	}
	if len(o.Challenge) == 0 {
		return nil, errors.New("mfatest: get: options have no challenge")
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	rpID, err := a.rpIDFor(o.RPID)
	if err != nil {
		return nil, err
	}
	var c *credential
	for _, cand := range a.creds {
		if cand.rpID != rpID {
			continue
		}
		if len(o.Allow) == 0 {
			c = cand
			break
		}
		for _, al := range o.Allow {
			if bytes.Equal(al.ID, cand.id) {
				c = cand
				break
			}
		}
		if c != nil {
			break
		}
	}
	if c == nil {
		return nil, ErrNoCredential
	}

	cdj, err := a.clientDataJSON("webauthn.get", o.Challenge)
	if err != nil {
		return nil, err
	}
	counter := c.counter + 1
	rpHash := sha256.Sum256([]byte(rpID))
	ad := append([]byte(nil), rpHash[:]...)
	ad = append(ad, flagUP|flagUV)
	ad = binary.BigEndian.AppendUint32(ad, counter)

	cdHash := sha256.Sum256(cdj)
	digest := sha256.Sum256(append(bytes.Clone(ad), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("mfatest: get: %w", err)
	}

	var r assertionResponse
	r.ID = base64.RawURLEncoding.EncodeToString(c.id)
	r.RawID = c.id
	r.Type = "public-key"
	r.AuthenticatorAttachment = "platform"
	r.Response.ClientDataJSON = cdj
	r.Response.AuthenticatorData = ad
	r.Response.Signature = sig
	r.Response.UserHandle = c.userHandle
	out, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("mfatest: get: %w", err)
	}
	c.counter = counter
	return out, nil
}

// coseES256 encodes a P-256 public key as a COSE_Key (RFC 9053):
// {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}, canonical order.
func coseES256(pub *ecdsa.PublicKey) ([]byte, error) {
	raw, err := pub.Bytes() // 0x04 | x | y
	if err != nil || len(raw) != 65 {
		return nil, fmt.Errorf("mfatest: encode public key: %v", err)
	}
	var k cbor
	k.head(majorMap, 5)
	k.int(1)
	k.int(2)
	k.int(3)
	k.int(algES256)
	k.int(-1)
	k.int(1)
	k.int(-2)
	k.bytes(raw[1:33])
	k.int(-3)
	k.bytes(raw[33:65])
	return k.b, nil
}

// cbor is the small subset of CBOR (RFC 8949) the attestation object needs.
type cbor struct{ b []byte }

const (
	majorUint  = 0
	majorNeg   = 1
	majorBytes = 2
	majorText  = 3
	majorMap   = 5
)

func (c *cbor) head(major byte, n uint64) {
	m := major << 5
	switch {
	case n < 24:
		c.b = append(c.b, m|byte(n))
	case n <= 0xff:
		c.b = append(c.b, m|24, byte(n))
	case n <= 0xffff:
		c.b = binary.BigEndian.AppendUint16(append(c.b, m|25), uint16(n))
	case n <= 0xffffffff:
		c.b = binary.BigEndian.AppendUint32(append(c.b, m|26), uint32(n))
	default:
		c.b = binary.BigEndian.AppendUint64(append(c.b, m|27), n)
	}
}

func (c *cbor) int(v int64) {
	if v >= 0 {
		c.head(majorUint, uint64(v))
		return
	}
	c.head(majorNeg, uint64(-1-v))
}

func (c *cbor) bytes(b []byte) {
	c.head(majorBytes, uint64(len(b)))
	c.b = append(c.b, b...)
}

func (c *cbor) text(s string) {
	c.head(majorText, uint64(len(s)))
	c.b = append(c.b, s...)
}
