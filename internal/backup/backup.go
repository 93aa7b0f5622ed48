// Package backup writes and reads Vigil's encrypted, signed backups.
//
// A backup is a new directory under the target, named
// vigil-<UTC time>-<random>, holding one age-encrypted file per part
// (part-000.age, …), manifest.json (what each part is: its name, sizes
// and SHA-256 of ciphertext and plaintext, the Vigil and schema versions,
// row counts, the time) and manifest.sig (Ed25519 over manifest.json,
// written last: a backup without it is incomplete). Writing never opens an
// existing file (O_EXCL) and never deletes anything, so the target can be
// append-only for the server (it needs no delete or overwrite rights, and
// ransomware on the server cannot destroy older backups through Vigil).
//
// Reading verifies the signature against the operator's verify key and
// every part's size and checksum BEFORE anything is written; a restore
// then decrypts each part into an empty directory, checking the plaintext
// hashes as it goes. What the parts are (a store snapshot, key files) is
// the caller's business: this package knows files, age and Ed25519 only.
//
// It must not import store drivers, the bus, HTTP or app: package
// backup/snapshot takes the store snapshot and checks the restored store,
// package backup/remote moves backups over HTTPS.
package backup

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
)

// Format names the layout this package writes and reads.
const Format = "vigil-backup/1"

// File names inside a backup directory.
const (
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.sig"
)

// maxManifest bounds what is read of manifest.json and manifest.sig.
const maxManifest = 1 << 20

// Errors a caller (and a test) can tell apart; every error names the part.
var (
	ErrSignature      = errors.New("backup: signature does not verify (manifest tampered with, or signed by another key)")
	ErrIncomplete     = errors.New("backup: incomplete (no manifest or signature)")
	ErrMissing        = errors.New("backup: part missing")
	ErrTruncated      = errors.New("backup: part truncated")
	ErrChecksum       = errors.New("backup: checksum mismatch")
	ErrTargetNotEmpty = errors.New("backup: restore target is not empty")
)

// Part is one file to back up: Name is its slash-separated path relative
// to the data directory (e.g. "vigil.db", "tls/ca.key"), Path where to
// read it now.
type Part struct {
	Name string
	Path string
	Mode fs.FileMode
}

// Manifest describes a backup. The caller fills the descriptive fields;
// Write fills Format, Name, Created, Recipient, SigningKey and Parts.
type Manifest struct {
	Format        string           `json:"format"`
	Name          string           `json:"name"`
	Created       time.Time        `json:"created"`
	VigilVersion  string           `json:"vigil_version"`
	Store         string           `json:"store"`
	SchemaVersion int              `json:"schema_version"`
	Counts        map[string]int64 `json:"counts"`
	// AuditPublicKey is the hex public half of the audit checkpoint key,
	// so a restore checks the chain against the key signed here.
	AuditPublicKey string     `json:"audit_public_key,omitempty"`
	Recipient      string     `json:"recipient"`
	SigningKey     string     `json:"signing_key"`
	Notes          []string   `json:"notes,omitempty"`
	Parts          []PartInfo `json:"parts"`
}

// PartInfo is a part as stored: File is the encrypted file in the backup
// directory; Size and SHA256 are of that ciphertext, PlainSize and
// PlainSHA256 of the restored file.
type PartInfo struct {
	Name        string `json:"name"`
	File        string `json:"file"`
	Mode        uint32 `json:"mode"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	PlainSize   int64  `json:"plain_size"`
	PlainSHA256 string `json:"plain_sha256"`
}

// Write makes a new backup directory under to (created if needed) with
// parts encrypted to rcpt and the manifest signed with key, and returns
// its path. m's descriptive fields are copied into the manifest. Nothing
// existing is opened for writing or removed; on failure the partial
// directory stays (it has no signature, so it never restores).
func Write(to string, now time.Time, m Manifest, parts []Part, rcpt *age.X25519Recipient, key ed25519.PrivateKey) (string, error) {
	if rcpt == nil || len(key) != ed25519.PrivateKeySize {
		return "", errors.New("write backup: a recipient and a signing key are required")
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		return "", fmt.Errorf("write backup: %w", err)
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("write backup: %w", err)
	}
	m.Format = Format
	m.Created = now.UTC().Truncate(time.Second)
	m.Name = "vigil-" + m.Created.Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:])
	m.Recipient = rcpt.String()
	m.SigningKey = hex.EncodeToString(key.Public().(ed25519.PublicKey))
	m.Parts = nil
	dir := filepath.Join(to, m.Name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("write backup: %w", err)
	}
	seen := map[string]bool{}
	for i, p := range parts {
		if err := checkName(p.Name); err != nil {
			return dir, fmt.Errorf("write backup: %w", err)
		}
		if seen[p.Name] {
			return dir, fmt.Errorf("write backup: part %s given twice", p.Name)
		}
		seen[p.Name] = true
		info, err := writePart(dir, fmt.Sprintf("part-%03d.age", i), p, rcpt)
		if err != nil {
			return dir, fmt.Errorf("write backup: part %s: %w", p.Name, err)
		}
		m.Parts = append(m.Parts, info)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return dir, fmt.Errorf("write backup: %w", err)
	}
	b = append(b, '\n')
	if err := createFile(filepath.Join(dir, ManifestFile), b); err != nil {
		return dir, fmt.Errorf("write backup: %w", err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(key, b)) + "\n"
	if err := createFile(filepath.Join(dir, SignatureFile), []byte(sig)); err != nil {
		return dir, fmt.Errorf("write backup: %w", err)
	}
	syncDir(dir)
	syncDir(to)
	return dir, nil
}

// writePart encrypts p into dir/file, hashing both sides.
func writePart(dir, file string, p Part, rcpt *age.X25519Recipient) (PartInfo, error) {
	src, err := os.Open(p.Path)
	if err != nil {
		return PartInfo{}, err
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return PartInfo{}, err
	}
	defer dst.Close()
	ch := sha256.New()
	cw := &countWriter{w: io.MultiWriter(dst, ch)}
	enc, err := age.Encrypt(cw, rcpt)
	if err != nil {
		return PartInfo{}, err
	}
	ph := sha256.New()
	n, err := io.Copy(io.MultiWriter(enc, ph), src)
	if err != nil {
		return PartInfo{}, err
	}
	if err := enc.Close(); err != nil {
		return PartInfo{}, err
	}
	if err := dst.Sync(); err != nil {
		return PartInfo{}, err
	}
	if err := dst.Close(); err != nil {
		return PartInfo{}, err
	}
	return PartInfo{Name: p.Name, File: file, Mode: uint32(p.Mode.Perm()), Size: cw.n, SHA256: hex.EncodeToString(ch.Sum(nil)),
		PlainSize: n, PlainSHA256: hex.EncodeToString(ph.Sum(nil))}, nil
}

// ParseManifest decodes a manifest strictly (an unknown field is an error)
// and checks its shape: the format, part names that stay inside the
// target, part files that stay inside the backup, hex checksums.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("backup manifest: %w", err)
	}
	if dec.More() {
		return Manifest{}, errors.New("backup manifest: trailing data after the JSON object")
	}
	if m.Format != Format {
		return Manifest{}, fmt.Errorf("backup manifest: format %q, want %q", m.Format, Format)
	}
	names, files := map[string]bool{}, map[string]bool{}
	for i, p := range m.Parts {
		if err := checkName(p.Name); err != nil {
			return Manifest{}, fmt.Errorf("backup manifest: parts[%d].name: %w", i, err)
		}
		if p.File == "" || p.File != filepath.Base(p.File) || p.File == "." || p.File == ".." || p.File == ManifestFile || p.File == SignatureFile {
			return Manifest{}, fmt.Errorf("backup manifest: parts[%d].file: %q is not a plain file name", i, p.File)
		}
		if names[p.Name] || files[p.File] {
			return Manifest{}, fmt.Errorf("backup manifest: parts[%d]: %s listed twice", i, p.Name)
		}
		names[p.Name], files[p.File] = true, true
		if p.Size < 0 || p.PlainSize < 0 {
			return Manifest{}, fmt.Errorf("backup manifest: parts[%d].size: negative", i)
		}
		for field, h := range map[string]string{"sha256": p.SHA256, "plain_sha256": p.PlainSHA256} {
			if d, err := hex.DecodeString(h); err != nil || len(d) != sha256.Size {
				return Manifest{}, fmt.Errorf("backup manifest: parts[%d].%s: want 64 hex digits", i, field)
			}
		}
		if p.Mode&^0o777 != 0 {
			return Manifest{}, fmt.Errorf("backup manifest: parts[%d].mode: %o is not a permission", i, p.Mode)
		}
	}
	return m, nil
}

// checkName accepts a clean relative slash path that stays inside the
// directory it is joined to.
func checkName(name string) error {
	if name == "" || path.IsAbs(name) || strings.Contains(name, `\`) || path.Clean(name) != name || name == "." || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("part name %q must be a clean relative path", name)
	}
	return nil
}

// Verify reads the backup at dir: the signature of its manifest against
// pub, then every part's presence, size and SHA-256. It writes nothing.
func Verify(dir string, pub ed25519.PublicKey) (Manifest, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Manifest{}, errors.New("verify backup: no valid verify key")
	}
	mb, err := readSmall(filepath.Join(dir, ManifestFile))
	if err != nil {
		return Manifest{}, fmt.Errorf("verify backup %s: %s: %w (%w)", dir, ManifestFile, ErrIncomplete, err)
	}
	sb, err := readSmall(filepath.Join(dir, SignatureFile))
	if err != nil {
		return Manifest{}, fmt.Errorf("verify backup %s: %s: %w (%w)", dir, SignatureFile, ErrIncomplete, err)
	}
	m, err := VerifyManifest(mb, sb, pub)
	if err != nil {
		return Manifest{}, fmt.Errorf("verify backup %s: %w", dir, err)
	}
	for _, p := range m.Parts {
		if err := checkPart(dir, p); err != nil {
			return Manifest{}, fmt.Errorf("verify backup %s: %w", dir, err)
		}
	}
	return m, nil
}

// VerifyManifest checks sig (manifest.sig's contents) over mb
// (manifest.json's) with pub, then parses the manifest. A reader that
// fetches a backup from elsewhere calls it before fetching any part.
func VerifyManifest(mb, sig []byte, pub ed25519.PublicKey) (Manifest, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Manifest{}, errors.New("verify backup: no valid verify key")
	}
	if len(mb) > maxManifest || len(sig) > maxManifest {
		return Manifest{}, fmt.Errorf("%s or %s larger than %d bytes: %w", ManifestFile, SignatureFile, maxManifest, ErrSignature)
	}
	s, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil || len(s) != ed25519.SignatureSize || !ed25519.Verify(pub, mb, s) {
		return Manifest{}, fmt.Errorf("%s: %w", SignatureFile, ErrSignature)
	}
	return ParseManifest(mb)
}

func checkPart(dir string, p PartInfo) error {
	f, err := os.Open(filepath.Join(dir, p.File))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("part %s (%s): %w", p.Name, p.File, ErrMissing)
	}
	if err != nil {
		return fmt.Errorf("part %s (%s): %w", p.Name, p.File, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, p.Size+1))
	if err != nil {
		return fmt.Errorf("part %s (%s): %w", p.Name, p.File, err)
	}
	switch {
	case n < p.Size:
		return fmt.Errorf("part %s (%s): %d of %d bytes: %w", p.Name, p.File, n, p.Size, ErrTruncated)
	case n > p.Size:
		return fmt.Errorf("part %s (%s): longer than its %d bytes: %w", p.Name, p.File, p.Size, ErrChecksum)
	case hex.EncodeToString(h.Sum(nil)) != p.SHA256:
		return fmt.Errorf("part %s (%s): %w", p.Name, p.File, ErrChecksum)
	}
	return nil
}

// Restore verifies the backup at dir (Verify), refuses a target that
// exists and is not an empty directory, lets accept (when not nil) refuse
// the verified manifest, then decrypts every part into target with id,
// checking each plaintext's size and SHA-256. Files are created with
// O_EXCL; a part that fails its check is removed and the error names it.
func Restore(dir, target string, pub ed25519.PublicKey, id age.Identity, accept func(Manifest) error) (Manifest, error) {
	if err := checkEmpty(target); err != nil {
		return Manifest{}, err
	}
	m, err := Verify(dir, pub)
	if err != nil {
		return Manifest{}, err
	}
	if accept != nil {
		if err := accept(m); err != nil {
			return Manifest{}, err
		}
	}
	// Every part's header opens with id before the target is created: a
	// wrong key writes nothing.
	for _, p := range m.Parts {
		if err := checkIdentity(dir, p, id); err != nil {
			return Manifest{}, fmt.Errorf("restore backup: part %s (%s): %w", p.Name, p.File, err)
		}
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return Manifest{}, fmt.Errorf("restore backup: %w", err)
	}
	for _, p := range m.Parts {
		if err := restorePart(dir, target, p, id); err != nil {
			return Manifest{}, fmt.Errorf("restore backup: part %s (%s): %w", p.Name, p.File, err)
		}
	}
	syncDir(target)
	return m, nil
}

func checkIdentity(dir string, p PartInfo, id age.Identity) error {
	f, err := os.Open(filepath.Join(dir, p.File))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := age.Decrypt(io.LimitReader(f, p.Size), id); err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	return nil
}

func restorePart(dir, target string, p PartInfo, id age.Identity) (err error) {
	src, err := os.Open(filepath.Join(dir, p.File))
	if err != nil {
		return err
	}
	defer src.Close()
	dec, err := age.Decrypt(io.LimitReader(src, p.Size), id)
	if err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	dst := filepath.Join(target, filepath.FromSlash(p.Name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(p.Mode)&0o700|0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(dst)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(dec, p.PlainSize+1))
	if err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	if n != p.PlainSize || hex.EncodeToString(h.Sum(nil)) != p.PlainSHA256 {
		return fmt.Errorf("decrypted content: %w", ErrChecksum)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// checkEmpty accepts a missing path or an empty directory.
func checkEmpty(target string) error {
	ents, err := os.ReadDir(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore backup: target %s: %w", target, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("restore backup: target %s holds %d entries: %w", target, len(ents), ErrTargetNotEmpty)
	}
	return nil
}

func readSmall(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("larger than %d bytes", maxManifest)
	}
	return b, nil
}

func createFile(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
