package datakey

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"vigil/internal/seal"
)

// SealerKEK is a KEK held in memory: a seal.Sealer.
type SealerKEK struct{ S *seal.Sealer }

// Wrap seals dek with the sealer's current key.
func (k SealerKEK) Wrap(dek, aad []byte) ([]byte, error) { return k.S.Seal(dek, aad) }

// Unwrap opens a wrapped key with whichever key it names.
func (k SealerKEK) Unwrap(w, aad []byte) ([]byte, error) { return k.S.Open(w, aad) }

// KeyID is the sealer's current key id.
func (k SealerKEK) KeyID() string { return k.S.KeyID() }

// FileKEK is the KEK in a seal key file outside the data directory. It
// reloads the file when it changed (a `vigil keys rotate` in another
// process), so rotation needs no restart.
type FileKEK struct {
	path string

	mu    sync.Mutex
	s     *seal.Sealer
	mtime time.Time
	size  int64
}

// OpenFileKEK loads the key file at path, creating it (and its directory,
// mode 0700) with one new key if it does not exist.
func OpenFileKEK(path string) (*FileKEK, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("datakey: key file directory: %w", err)
	}
	s, err := seal.LoadOrCreateKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("datakey: %w", err)
	}
	f := &FileKEK{path: path, s: s}
	f.mtime, f.size = stat(path)
	return f, nil
}

// Path is the key file's path.
func (f *FileKEK) Path() string { return f.path }

// String prints the path and the current key id only.
func (f *FileKEK) String() string { return "datakey.FileKEK(" + f.path + ", " + f.KeyID() + ")" }

func stat(path string) (time.Time, int64) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, -1
	}
	return fi.ModTime(), fi.Size()
}

// sealer returns the current sealer, reloading the file if it changed.
func (f *FileKEK) sealer() *seal.Sealer {
	f.mu.Lock()
	defer f.mu.Unlock()
	mt, sz := stat(f.path)
	if sz >= 0 && (!mt.Equal(f.mtime) || sz != f.size) {
		// A file that fails to load (mid-edit by hand, wrong mode) keeps
		// the keys already loaded; the next change is tried again.
		if s, err := seal.LoadOrCreateKeyFile(f.path); err == nil {
			f.s, f.mtime, f.size = s, mt, sz
		}
	}
	return f.s
}

// Wrap seals dek with the file's newest key.
func (f *FileKEK) Wrap(dek, aad []byte) ([]byte, error) { return f.sealer().Seal(dek, aad) }

// Unwrap opens a wrapped key with whichever key of the file it names.
func (f *FileKEK) Unwrap(w, aad []byte) ([]byte, error) { return f.sealer().Open(w, aad) }

// KeyID is the id of the file's newest key.
func (f *FileKEK) KeyID() string { return f.sealer().KeyID() }

// Rotate appends a new key to the file; it wraps from now on.
func (f *FileKEK) Rotate() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := seal.RotateKeyFile(f.path)
	if err != nil {
		return "", fmt.Errorf("datakey: %w", err)
	}
	f.s = s
	f.mtime, f.size = stat(f.path)
	return s.KeyID(), nil
}

// KeyIDs lists the ids of the keys in the file, oldest first.
func (f *FileKEK) KeyIDs() ([]string, error) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, fmt.Errorf("datakey: key file: %w", err)
	}
	var ids []string
	for _, line := range keyLines(data) {
		if id, ok := lineID(line); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// RemoveKeys rewrites the key file without the keys whose ids are in
// remove (never the newest), atomically (mode 0600), and checks the result
// loads. Callers make sure nothing is wrapped by them any more.
func (f *FileKEK) RemoveKeys(remove map[string]bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if remove[f.s.KeyID()] {
		return errors.New("datakey: refusing to remove the current key-encryption key")
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("datakey: key file: %w", err)
	}
	var out bytes.Buffer
	for _, line := range keyLines(data) {
		if id, ok := lineID(line); ok && remove[id] {
			continue
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), "."+filepath.Base(f.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("datakey: remove keys: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err == nil {
		if _, err = tmp.Write(out.Bytes()); err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("datakey: remove keys: %w", err)
	}
	s, err := seal.LoadOrCreateKeyFile(tmp.Name())
	if err != nil {
		return fmt.Errorf("datakey: remove keys: the new key file does not load: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("datakey: remove keys: %w", err)
	}
	f.s = s
	f.mtime, f.size = stat(f.path)
	return nil
}

func keyLines(data []byte) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// lineID is the key id of a key line ("<id hex> <base64>").
func lineID(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if t == "" || strings.HasPrefix(t, "#") {
		return "", false
	}
	id, _, ok := strings.Cut(t, " ")
	return id, ok
}
