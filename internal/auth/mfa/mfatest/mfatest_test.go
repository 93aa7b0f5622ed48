package mfatest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
)

func createJSON(challenge string) []byte {
	return []byte(`{"publicKey":{"rp":{"id":"localhost","name":"Vigil"},"user":{"id":"dXNlcg","name":"u","displayName":"U"},` +
		`"challenge":"` + challenge + `","pubKeyCredParams":[{"type":"public-key","alg":-7}]}}`)
}

func getJSON(challenge string) []byte {
	return []byte(`{"publicKey":{"challenge":"` + challenge + `","rpId":"localhost"}}`)
}

type assertion struct {
	ID       string `json:"id"`
	Response struct {
		ClientDataJSON    string `json:"clientDataJSON"`
		AuthenticatorData string `json:"authenticatorData"`
		UserHandle        string `json:"userHandle"`
	} `json:"response"`
}

func get(t *testing.T, a *Authenticator, challenge string) (counter uint32, cd clientData, as assertion) {
	t.Helper()
	out, err := a.Get(getJSON(challenge))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &as); err != nil {
		t.Fatal(err)
	}
	ad, err := base64.RawURLEncoding.DecodeString(as.Response.AuthenticatorData)
	if err != nil || len(ad) != 37 {
		t.Fatalf("authenticatorData: %d bytes, %v", len(ad), err)
	}
	if want := sha256.Sum256([]byte("localhost")); string(ad[:32]) != string(want[:]) {
		t.Error("rpIdHash is not SHA-256 of the rp id")
	}
	if ad[32] != flagUP|flagUV {
		t.Errorf("flags %#x, want UP|UV", ad[32])
	}
	raw, _ := base64.RawURLEncoding.DecodeString(as.Response.ClientDataJSON)
	if err := json.Unmarshal(raw, &cd); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint32(ad[33:37]), cd, as
}

func TestCreateGetCloneCounters(t *testing.T) {
	a := NewAuthenticator("https://localhost:8443")
	if _, err := a.Get(getJSON("AAAAAAAAAAAAAAAAAAAAAA")); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("Get before Create: %v, want ErrNoCredential", err)
	}
	if _, err := a.Create(createJSON("Y2hhbGxlbmdlLWNoYWxsZW5nZQ")); err != nil {
		t.Fatal(err)
	}
	if a.Credentials() != 1 {
		t.Fatalf("%d credentials", a.Credentials())
	}
	n, cd, as := get(t, a, "Y2hhbGxlbmdlLTEtY2hhbGxlbmdl")
	if n != 1 || cd.Type != "webauthn.get" || cd.Challenge != "Y2hhbGxlbmdlLTEtY2hhbGxlbmdl" || cd.Origin != "https://localhost:8443" {
		t.Errorf("counter %d, client data %+v", n, cd)
	}
	if as.Response.UserHandle != "dXNlcg" {
		t.Errorf("userHandle %q, want the user id of the options", as.Response.UserHandle)
	}
	c := a.Clone()
	if n, _, _ := get(t, a, "AAAAAAAAAAAAAAAAAAAAAA"); n != 2 {
		t.Errorf("original counter %d, want 2", n)
	}
	if n, _, _ := get(t, c, "AAAAAAAAAAAAAAAAAAAAAA"); n != 2 {
		t.Errorf("clone counter %d, want 2 (copied at 1, independent after)", n)
	}
	c.SetOrigin("https://evil.example")
	if _, cd, _ := get(t, c, "AAAAAAAAAAAAAAAAAAAAAA"); cd.Origin != "https://evil.example" {
		t.Errorf("origin after SetOrigin: %q", cd.Origin)
	}
	if _, cd, _ := get(t, a, "AAAAAAAAAAAAAAAAAAAAAA"); cd.Origin != "https://localhost:8443" {
		t.Errorf("SetOrigin on the clone changed the original: %q", cd.Origin)
	}
}

func TestCreateRefuses(t *testing.T) {
	a := NewAuthenticator("https://localhost")
	for name, opts := range map[string]string{
		"not json":     `{`,
		"no challenge": `{"publicKey":{"rp":{"id":"localhost"},"pubKeyCredParams":[{"type":"public-key","alg":-7}]}}`,
		"no ES256":     `{"publicKey":{"rp":{"id":"localhost"},"challenge":"AAAA","pubKeyCredParams":[{"type":"public-key","alg":-257}]}}`,
	} {
		if _, err := a.Create([]byte(opts)); err == nil {
			t.Errorf("%s: Create succeeded", name)
		}
	}
}

func TestCBOR(t *testing.T) {
	for _, tc := range []struct {
		f    func(*cbor)
		want string
	}{
		{func(c *cbor) { c.int(0) }, "00"},
		{func(c *cbor) { c.int(23) }, "17"},
		{func(c *cbor) { c.int(24) }, "1818"},
		{func(c *cbor) { c.int(1000) }, "1903e8"},
		{func(c *cbor) { c.int(1000000) }, "1a000f4240"},
		{func(c *cbor) { c.int(-1) }, "20"},
		{func(c *cbor) { c.int(-7) }, "26"},
		{func(c *cbor) { c.int(-100) }, "3863"},
		{func(c *cbor) { c.text("fmt") }, "63666d74"},
		{func(c *cbor) { c.bytes([]byte{1, 2}) }, "420102"},
		{func(c *cbor) { c.head(majorMap, 0) }, "a0"},
	} {
		var c cbor
		tc.f(&c)
		if got := hexs(c.b); got != tc.want {
			t.Errorf("got %s, want %s (RFC 8949 appendix A)", got, tc.want)
		}
	}
}

func hexs(b []byte) string {
	const d = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, x := range b {
		out = append(out, d[x>>4], d[x&15])
	}
	return string(out)
}
