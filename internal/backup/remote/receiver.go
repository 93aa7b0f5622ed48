package remote

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"vigil/internal/backup"
)

// incomingDir holds uploads in progress inside the receiver's directory;
// a finished upload is linked to its name (link fails on an existing
// name: create-only even against a racing PUT) and the temp file removed.
const incomingDir = ".incoming"

// DefaultMaxPart bounds one uploaded file (64 GiB).
const DefaultMaxPart = 64 << 30

// Receiver is the backup host's HTTP handler: PUT /<backup>/<file>
// creates a new file (If-None-Match: * required; an existing name is 412,
// never overwritten; a backup whose manifest.sig has arrived is sealed:
// 409), GET /<backup>/<file> reads one back. There is no listing, no
// DELETE and no overwrite. Every request needs the bearer token.
type Receiver struct {
	dir     string
	token   [sha256.Size]byte
	maxPart int64
	log     *slog.Logger
}

// NewReceiver serves dir (created 0700 if missing) to holders of token.
// maxPart ≤ 0 takes DefaultMaxPart.
func NewReceiver(dir, token string, maxPart int64, log *slog.Logger) (*Receiver, error) {
	if len(token) < 16 {
		return nil, errors.New("backup receiver: the token must be at least 16 characters")
	}
	if err := os.MkdirAll(filepath.Join(dir, incomingDir), 0o700); err != nil {
		return nil, fmt.Errorf("backup receiver: %w", err)
	}
	if maxPart <= 0 {
		maxPart = DefaultMaxPart
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Receiver{dir: dir, token: sha256.Sum256([]byte(token)), maxPart: maxPart, log: log}, nil
}

func (rv *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	h := sha256.Sum256([]byte(tok))
	if !ok || subtle.ConstantTimeCompare(h[:], rv.token[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-backup"`)
		httpError(w, http.StatusUnauthorized, "Authorization", "a valid bearer token is required")
		return
	}
	name, file, err := splitPath(r.URL.Path)
	if err != nil {
		httpError(w, http.StatusNotFound, "path", err.Error())
		return
	}
	switch r.Method {
	case http.MethodPut:
		rv.put(w, r, name, file)
	case http.MethodGet, http.MethodHead:
		rv.get(w, r, name, file)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		httpError(w, http.StatusMethodNotAllowed, "method", r.Method+" is not allowed: this target only creates and reads files")
	}
}

// splitPath accepts /<backup name>/<part, manifest.json or manifest.sig>.
func splitPath(p string) (name, file string, err error) {
	name, file, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if !ok || !backupName.MatchString(name) {
		return "", "", errors.New("want /vigil-<time>-<id>/<file>")
	}
	if file != backup.ManifestFile && file != backup.SignatureFile && !partFile.MatchString(file) {
		return "", "", fmt.Errorf("want part-NNN.age, %s or %s", backup.ManifestFile, backup.SignatureFile)
	}
	return name, file, nil
}

func (rv *Receiver) put(w http.ResponseWriter, r *http.Request, name, file string) {
	if r.Header.Get("If-None-Match") != "*" {
		httpError(w, http.StatusPreconditionRequired, "If-None-Match", "create-only: send If-None-Match: *")
		return
	}
	limit := rv.maxPart
	if file == backup.ManifestFile || file == backup.SignatureFile {
		limit = 1 << 20
	}
	if r.ContentLength > limit {
		httpError(w, http.StatusRequestEntityTooLarge, "Content-Length", fmt.Sprintf("larger than %d bytes", limit))
		return
	}
	dir := filepath.Join(rv.dir, name)
	final := filepath.Join(dir, file)
	if _, err := os.Lstat(final); err == nil {
		httpError(w, http.StatusPreconditionFailed, "path", "exists: never overwritten")
		return
	}
	if file != backup.SignatureFile {
		if _, err := os.Lstat(filepath.Join(dir, backup.SignatureFile)); err == nil {
			httpError(w, http.StatusConflict, "path", "the backup is complete (its signature has arrived): no new files")
			return
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		rv.fail(w, "mkdir", err)
		return
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(rv.dir, incomingDir, name+"."+file+"."+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		rv.fail(w, "create", err)
		return
	}
	defer os.Remove(tmp)
	n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, limit))
	if err == nil && r.ContentLength >= 0 && n != r.ContentLength {
		err = fmt.Errorf("%d of %d bytes", n, r.ContentLength)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpError(w, http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("larger than %d bytes", limit))
			return
		}
		httpError(w, http.StatusBadRequest, "body", "upload incomplete: "+err.Error())
		return
	}
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			httpError(w, http.StatusPreconditionFailed, "path", "exists: never overwritten")
			return
		}
		rv.fail(w, "link", err)
		return
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	rv.log.Info("backup file received", "backup", name, "file", file, "bytes", n)
	w.WriteHeader(http.StatusCreated)
}

func (rv *Receiver) get(w http.ResponseWriter, r *http.Request, name, file string) {
	f, err := os.Open(filepath.Join(rv.dir, name, file))
	if err != nil {
		httpError(w, http.StatusNotFound, "path", "no such file")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		httpError(w, http.StatusNotFound, "path", "no such file")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

func (rv *Receiver) fail(w http.ResponseWriter, op string, err error) {
	rv.log.Error("backup receiver", "op", op, "err", err)
	httpError(w, http.StatusInternalServerError, "", "could not store the file")
}

// httpError writes {"error": msg, "field": field}.
func httpError(w http.ResponseWriter, code int, field, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
		Field string `json:"field,omitempty"`
	}{msg, field})
}
