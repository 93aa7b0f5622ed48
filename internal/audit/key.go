package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxKeyFile bounds what LoadKey reads: a PEM Ed25519 key is ~120 bytes.
const maxKeyFile = 16 << 10

// LoadOrCreateKey returns the checkpoint signing key kept at path (the
// caller passes <data dir>/audit-signing.key), creating a fresh random one
// with mode 0600 when there is none. Creation is atomic (a temp file
// linked into place), so concurrent starters end up with the same key.
// Errors name the file, never its contents.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	key, err := LoadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit signing key: %w", err)
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create audit signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("create audit signing key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".audit-signing-*.tmp") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("create audit signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create audit signing key %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return LoadKey(path) // another process created it first
	} else if err != nil {
		return nil, fmt.Errorf("create audit signing key %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return key, nil
}

// LoadKey reads the signing key at path. It refuses a file that is not a
// regular file or that its group or others may read or write. A missing
// file gives an error wrapping fs.ErrNotExist.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load audit signing key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load audit signing key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load audit signing key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("load audit signing key %s: mode %04o lets group or others access it; run chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("load audit signing key %s: %w", path, err)
	}
	bad := fmt.Errorf("load audit signing key %s: not a PEM PKCS#8 Ed25519 private key", path)
	if len(b) > maxKeyFile {
		return nil, bad
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, bad
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, bad
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, bad
	}
	return key, nil
}
