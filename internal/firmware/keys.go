package firmware

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Signer is one Ed25519 signing key with its TUF public key and key id.
type Signer struct {
	priv ed25519.PrivateKey
	key  *metadata.Key
	id   string
	s    signature.Signer
}

// NewSigner wraps an Ed25519 private key.
func NewSigner(priv ed25519.PrivateKey) (*Signer, error) {
	key, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	id, err := key.ID()
	if err != nil {
		return nil, fmt.Errorf("signing key id: %w", err)
	}
	s, err := signature.LoadSigner(priv, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return &Signer{priv: priv, key: key, id: id, s: s}, nil
}

// GenerateSigner makes a new random Ed25519 key.
func GenerateSigner() (*Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return NewSigner(priv)
}

// Key is the TUF public key.
func (s *Signer) Key() *metadata.Key { return s.key }

// ID is the TUF key id (hex SHA-256 of the canonical public key).
func (s *Signer) ID() string { return s.id }

// PublicJSON is the TUF public key as JSON, what `vigil release init
// --online-key` reads.
func (s *Signer) PublicJSON() ([]byte, error) {
	b, err := json.MarshalIndent(s.key, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("public key json: %w", err)
	}
	return append(b, '\n'), nil
}

// ParsePublicKey reads a TUF public key JSON (PublicJSON) and checks it is
// an Ed25519 key.
func ParsePublicKey(b []byte) (*metadata.Key, error) {
	var k metadata.Key
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if k.Type != metadata.KeyTypeEd25519 || k.Scheme != metadata.KeySchemeEd25519 {
		return nil, fmt.Errorf("public key: type %q scheme %q: want ed25519", k.Type, k.Scheme)
	}
	if _, err := k.ToPublicKey(); err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return &k, nil
}

const pemType = "PRIVATE KEY"

// WriteKeyFile writes the private key as PKCS#8 PEM, mode 0600, refusing
// to overwrite an existing file.
func (s *Signer) WriteKeyFile(path string) error {
	der, err := x509.MarshalPKCS8PrivateKey(s.priv)
	if err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: pemType, Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return f.Close()
}

// ReadKeyFile reads a key written by WriteKeyFile. It refuses a key file
// that others can read.
func ReadKeyFile(path string) (*Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read key %s: mode %v: others can read it; chmod 600", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != pemType {
		return nil, fmt.Errorf("read key %s: not a PEM %q block", path, pemType)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("read key %s: %T: want an Ed25519 key", path, k)
	}
	return NewSigner(priv)
}

// LoadOrCreateKey reads the key at path, or makes one there (0600) when
// there is none: the server's online key, made on first use.
func LoadOrCreateKey(path string) (*Signer, error) {
	s, err := ReadKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	s, err = GenerateSigner()
	if err != nil {
		return nil, err
	}
	if err := s.WriteKeyFile(path); err != nil {
		if errors.Is(err, fs.ErrExist) { // made by another process meanwhile
			return ReadKeyFile(path)
		}
		return nil, err
	}
	return s, nil
}
