package backup

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
)

// Key file names `vigil backup keygen` writes.
const (
	SigningKeyFile = "backup-signing.key" // Ed25519 private key, PEM PKCS#8, 0600
	VerifyKeyFile  = "backup-signing.pub" // its public half, PEM PKIX
	IdentityFile   = "backup-age.key"     // age X25519 identity, 0600: keep it offline
	RecipientFile  = "backup-age.pub"     // age recipient (age1…)
)

// maxKeyFile bounds what is read of a key file.
const maxKeyFile = 64 << 10

// KeyFiles are the paths GenerateKeys wrote.
type KeyFiles struct {
	SigningKey, VerifyKey, Identity, Recipient string
	RecipientText                              string // age1…
}

// GenerateKeys writes a fresh signing key pair and age identity into dir
// (created 0700 if needed), refusing to replace any existing file.
func GenerateKeys(dir string) (KeyFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return KeyFiles{}, fmt.Errorf("generate backup keys: %w", err)
	}
	kf := KeyFiles{
		SigningKey: filepath.Join(dir, SigningKeyFile), VerifyKey: filepath.Join(dir, VerifyKeyFile),
		Identity: filepath.Join(dir, IdentityFile), Recipient: filepath.Join(dir, RecipientFile),
	}
	for _, p := range []string{kf.SigningKey, kf.VerifyKey, kf.Identity, kf.Recipient} {
		if _, err := os.Lstat(p); err == nil {
			return KeyFiles{}, fmt.Errorf("generate backup keys: %s exists; not replacing it", p)
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return KeyFiles{}, fmt.Errorf("generate backup keys: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return KeyFiles{}, fmt.Errorf("generate backup keys: %w", err)
	}
	pder, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return KeyFiles{}, fmt.Errorf("generate backup keys: %w", err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return KeyFiles{}, fmt.Errorf("generate backup keys: %w", err)
	}
	kf.RecipientText = id.Recipient().String()
	files := []struct {
		path string
		data []byte
	}{
		{kf.SigningKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})},
		{kf.VerifyKey, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder})},
		{kf.Identity, []byte("# vigil backup decryption key: keep it offline\n# public key: " + kf.RecipientText + "\n" + id.String() + "\n")},
		{kf.Recipient, []byte(kf.RecipientText + "\n")},
	}
	for _, f := range files {
		if err := createFile(f.path, f.data); err != nil {
			return KeyFiles{}, fmt.Errorf("generate backup keys: %w", err)
		}
	}
	return kf, nil
}

// LoadSigningKey reads an Ed25519 private key (PEM PKCS#8), refusing a
// file others may read. Errors name the file, never its contents.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := readKeyFile(path, true)
	if err != nil {
		return nil, fmt.Errorf("backup signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("backup signing key %s: not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("backup signing key %s: not PKCS#8", path)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("backup signing key %s: not an Ed25519 key", path)
	}
	return ek, nil
}

// LoadVerifyKey reads an Ed25519 public key: a PEM PUBLIC KEY file or 64
// hex digits in a file.
func LoadVerifyKey(path string) (ed25519.PublicKey, error) {
	b, err := readKeyFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("backup verify key: %w", err)
	}
	return ParseVerifyKey(b)
}

// ParseVerifyKey parses a PEM PUBLIC KEY (Ed25519) or 64 hex digits.
func ParseVerifyKey(b []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, errors.New("backup verify key: not a PEM PUBLIC KEY")
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, errors.New("backup verify key: not a PKIX public key")
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, errors.New("backup verify key: not an Ed25519 key")
		}
		return ek, nil
	}
	h, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(h) != ed25519.PublicKeySize {
		return nil, errors.New("backup verify key: want a PEM PUBLIC KEY or 64 hex digits")
	}
	return ed25519.PublicKey(h), nil
}

// LoadIdentity reads an age identity file (as GenerateKeys or age-keygen
// write it), refusing a file others may read.
func LoadIdentity(path string) (age.Identity, error) {
	b, err := readKeyFile(path, true)
	if err != nil {
		return nil, fmt.Errorf("backup identity: %w", err)
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(b)))
	if err != nil || len(ids) == 0 {
		return nil, fmt.Errorf("backup identity %s: not an age identity file", path)
	}
	if len(ids) == 1 {
		return ids[0], nil
	}
	return multiIdentity(ids), nil
}

// multiIdentity tries each identity in turn.
type multiIdentity []age.Identity

func (m multiIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, id := range m {
		k, err := id.Unwrap(stanzas)
		if errors.Is(err, age.ErrIncorrectIdentity) {
			continue
		}
		return k, err
	}
	return nil, age.ErrIncorrectIdentity
}

// ParseRecipient reads an age X25519 recipient: "age1…" itself, or the
// path of a file holding one (as GenerateKeys writes it).
func ParseRecipient(s string) (*age.X25519Recipient, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "age1") {
		b, err := readKeyFile(s, false)
		if err != nil {
			return nil, fmt.Errorf("backup recipient: want age1… or a file holding it: %w", err)
		}
		s = strings.TrimSpace(string(b))
	}
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		return nil, errors.New("backup recipient: not an age X25519 recipient (age1…)")
	}
	return r, nil
}

func readKeyFile(path string, private bool) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if private && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	if fi.Size() > maxKeyFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxKeyFile)
	}
	return os.ReadFile(path)
}
