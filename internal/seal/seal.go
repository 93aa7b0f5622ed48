// Package seal encrypts small secrets at rest (TOTP seeds, WebAuthn
// credential records, webhook secrets) with a per-install key-encryption
// key (KEK) that lives in a file outside the database, so a copy of the
// database alone reveals none of them (security requirement 2).
//
// A sealed value is
//
//	version (1 byte, 0x01) | key id (4 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//
// The version byte, the key id and the caller's additional data are all
// authenticated. Callers pass additional data that names the row the value
// belongs to ("totp:"+userID), so a ciphertext copied into another row does
// not open. Open never returns unauthenticated bytes: any change to the
// value, a wrong AAD or an unknown key id is ErrIntegrity.
//
// Rotation: a Sealer holds one or more keys, seals with the newest and opens
// with whichever key the ciphertext names. RotateKeyFile appends a new key to
// the key file; rows sealed under older keys keep opening and can be
// re-sealed at leisure (SealedWithCurrent tells which need it).
//
// The key file is text, one key per line, newest last, created with mode
// 0600 through a synced temporary file that is linked into place, so a crash
// never leaves a half-written key and two processes racing to create it end
// up with the same key. A key file that is group- or world-accessible, or
// (on Unix) owned by another user, is refused with the command that fixes it.
//
// Key material never reaches logs or error text: Key and Sealer print as
// their key ids only (String, GoString, slog.LogValuer).
//
// Must not import: anything but the standard library; it is a leaf used by
// internal/auth, internal/app and the stores' callers. A Sealer is immutable
// after construction and safe for concurrent use; nothing here starts a
// goroutine.
package seal

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// ErrIntegrity is returned (wrapped) by Open for anything that is not a value
// this Sealer sealed with the same additional data: a flipped byte, a
// truncated value, a wrong AAD, an unknown version or key id.
var ErrIntegrity = errors.New("seal: integrity check failed")

const (
	version1  = 0x01
	idLen     = 4
	keyLen    = 32
	nonceLen  = 12
	tagLen    = 16
	headerLen = 1 + idLen
	overhead  = headerLen + nonceLen + tagLen
	keyMode   = fs.FileMode(0o600)
)

// Key is one key-encryption key and its short random id. The zero Key is
// invalid. A Key prints as its id only.
type Key struct {
	id     [idLen]byte
	secret []byte // keyLen bytes, never printed
}

// NewKey returns a fresh random key with a random id.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k.id[:]); err != nil {
		return Key{}, fmt.Errorf("seal: new key: %w", err)
	}
	k.secret = make([]byte, keyLen)
	if _, err := rand.Read(k.secret); err != nil {
		return Key{}, fmt.Errorf("seal: new key: %w", err)
	}
	return k, nil
}

// ID is the key id in hex (8 characters), safe to log.
func (k Key) ID() string { return hex.EncodeToString(k.id[:]) }

// String prints the key id only.
func (k Key) String() string { return "seal.Key(" + k.ID() + ")" }

// GoString keeps %#v from printing the key material.
func (k Key) GoString() string { return k.String() }

// LogValue keeps slog from printing the key material.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Fingerprint is a one-way digest of the key material (16 hex characters),
// safe to log and compare: two installs' keys have different fingerprints.
func (k Key) Fingerprint() string {
	h := sha256.New()
	h.Write([]byte("vigil seal key fingerprint v1\x00"))
	h.Write(k.secret)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

type entry struct {
	key  Key
	aead cipher.AEAD
}

// Sealer seals with its newest key and opens with any of its keys.
type Sealer struct {
	current *entry
	byID    map[[idLen]byte]*entry
}

// New returns a Sealer holding keys, oldest first: it seals with the last
// one. It refuses no keys, an invalid key and duplicate key ids.
func New(keys ...Key) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("seal: no keys")
	}
	s := &Sealer{byID: make(map[[idLen]byte]*entry, len(keys))}
	for _, k := range keys {
		if len(k.secret) != keyLen {
			return nil, fmt.Errorf("seal: key %s is not a %d-byte key", k.ID(), keyLen)
		}
		if _, dup := s.byID[k.id]; dup {
			return nil, fmt.Errorf("seal: duplicate key id %s", k.ID())
		}
		block, err := aes.NewCipher(k.secret)
		if err != nil {
			return nil, fmt.Errorf("seal: key %s: %w", k.ID(), err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("seal: key %s: %w", k.ID(), err)
		}
		e := &entry{key: k, aead: aead}
		s.byID[k.id] = e
		s.current = e
	}
	return s, nil
}

// KeyID is the id of the key new values are sealed with.
func (s *Sealer) KeyID() string { return s.current.key.ID() }

// Fingerprint is the fingerprint of the key new values are sealed with.
func (s *Sealer) Fingerprint() string { return s.current.key.Fingerprint() }

// String prints the current key id only.
func (s *Sealer) String() string {
	return fmt.Sprintf("seal.Sealer(current=%s, keys=%d)", s.KeyID(), len(s.byID))
}

// GoString keeps %#v from printing the key material.
func (s *Sealer) GoString() string { return s.String() }

// LogValue keeps slog from printing the key material.
func (s *Sealer) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Seal encrypts plaintext bound to aad with the current key.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	e := s.current
	out := make([]byte, headerLen+nonceLen, overhead+len(plaintext))
	out[0] = version1
	copy(out[1:headerLen], e.key.id[:])
	if _, err := rand.Read(out[headerLen:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	nonce := out[headerLen : headerLen+nonceLen]
	return e.aead.Seal(out, nonce, plaintext, additional(out[:headerLen], aad)), nil
}

// Open decrypts a value sealed by Seal with the same aad. Any failure wraps
// ErrIntegrity and returns no plaintext.
func (s *Sealer) Open(ct, aad []byte) ([]byte, error) {
	if len(ct) < overhead {
		return nil, fmt.Errorf("open: %d bytes is shorter than any sealed value: %w", len(ct), ErrIntegrity)
	}
	if ct[0] != version1 {
		return nil, fmt.Errorf("open: unknown version %d: %w", ct[0], ErrIntegrity)
	}
	var id [idLen]byte
	copy(id[:], ct[1:headerLen])
	e, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("open: unknown key id %x: %w", id, ErrIntegrity)
	}
	nonce := ct[headerLen : headerLen+nonceLen]
	pt, err := e.aead.Open(nil, nonce, ct[headerLen+nonceLen:], additional(ct[:headerLen], aad))
	if err != nil {
		return nil, fmt.Errorf("open: key %s: %w", e.key.ID(), ErrIntegrity)
	}
	return pt, nil
}

// SealedWithCurrent reports whether ct names the current key, i.e. whether
// it needs no re-sealing after a rotation. It does not authenticate ct.
func (s *Sealer) SealedWithCurrent(ct []byte) bool {
	return len(ct) >= headerLen && ct[0] == version1 && bytes.Equal(ct[1:headerLen], s.current.key.id[:])
}

// additional is the GCM additional data: the header, then the caller's aad.
// The header has a fixed length, so the split is unambiguous.
func additional(header, aad []byte) []byte {
	ad := make([]byte, 0, len(header)+len(aad))
	return append(append(ad, header...), aad...)
}

// --- key file ---

const fileHeader = "# Vigil key-encryption keys (internal/seal), one per line, newest last.\n" +
	"# Format: <key id hex> <base64 key>. Secret: keep mode 0600, back it up apart from the database.\n"

// LoadOrCreateKeyFile loads the key file at path, creating it with one new
// key (mode 0600) if it does not exist. The directory must exist.
func LoadOrCreateKeyFile(path string) (*Sealer, error) {
	keys, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, kerr := NewKey()
		if kerr != nil {
			return nil, kerr
		}
		if cerr := createExclusive(path, encodeKeyFile([]Key{k})); cerr != nil && !errors.Is(cerr, fs.ErrExist) {
			return nil, fmt.Errorf("seal: create key file: %w", cerr)
		}
		// Created by us, or by a process that won the race: read what is there.
		keys, err = readKeyFile(path)
	}
	if err != nil {
		return nil, err
	}
	return New(keys...)
}

// RotateKeyFile adds a new key to the existing key file at path (atomically,
// mode 0600) and returns a Sealer that seals with it and still opens values
// sealed with every older key in the file.
func RotateKeyFile(path string) (*Sealer, error) {
	keys, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := NewKey()
	if err != nil {
		return nil, err
	}
	keys = append(keys, k)
	s, err := New(keys...)
	if err != nil {
		return nil, err
	}
	if err := replaceFile(path, encodeKeyFile(keys)); err != nil {
		return nil, fmt.Errorf("seal: rotate key file: %w", err)
	}
	return s, nil
}

func encodeKeyFile(keys []Key) []byte {
	var b bytes.Buffer
	b.WriteString(fileHeader)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", k.ID(), base64.StdEncoding.EncodeToString(k.secret))
	}
	return b.Bytes()
}

// readKeyFile checks the file's mode and owner, then parses it. Errors name
// the path and line but never include key material.
func readKeyFile(path string) ([]Key, error) {
	fi, err := os.Stat(path) // follows symlinks (mounted secrets); the target is checked
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("seal: key file %s has mode %04o, accessible to group or others; fix with: chmod 600 %s", path, perm, path)
	}
	if err := checkOwner(path, fi); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	var keys []Key
	seen := map[[idLen]byte]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseKeyLine(line)
		if err != nil {
			return nil, fmt.Errorf("seal: key file %s line %d: %w", path, n, err)
		}
		if seen[k.id] {
			return nil, fmt.Errorf("seal: key file %s line %d: duplicate key id %s", path, n, k.ID())
		}
		seen[k.id] = true
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("seal: key file %s holds no key", path)
	}
	return keys, nil
}

func parseKeyLine(line string) (Key, error) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return Key{}, errors.New("want <key id hex> <base64 key>")
	}
	var k Key
	id, err := hex.DecodeString(f[0])
	if err != nil || len(id) != idLen {
		return Key{}, fmt.Errorf("key id is not %d hex characters", 2*idLen)
	}
	copy(k.id[:], id)
	k.secret, err = base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(k.secret) != keyLen {
		return Key{}, fmt.Errorf("key %s is not %d bytes of base64", k.ID(), keyLen)
	}
	return k, nil
}

// writeTemp writes data to a synced temporary file with mode 0600 in path's
// directory and returns its name.
func writeTemp(path string, data []byte) (name string, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(keyMode); err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// createExclusive puts data at path only if path does not exist (hard link
// of a complete temporary file), so readers never see a partial key file.
func createExclusive(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp) }()
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// replaceFile atomically replaces path with data.
func replaceFile(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
