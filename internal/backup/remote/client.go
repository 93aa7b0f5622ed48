// Package remote moves Vigil backups to and from an append-only HTTPS
// target: the client uploads a backup directory with create-only PUTs
// (If-None-Match: *; a 412 is an error, never an overwrite) and reads one
// back by name; Receiver is the small server on the backup host that
// accepts only new files (no overwrite, no delete, no listing), so a
// compromised Vigil server cannot destroy older backups; Prune is the
// backup host's retention, run by the operator with rights the server
// never has.
//
// It must not import store drivers, the bus, the gateways, internal/app
// or cmd: it moves files of the backup format (package backup).
package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"vigil/internal/backup"
)

// Errors a caller can tell apart.
var (
	// ErrExists is a create-only PUT the target refused with 412: the
	// name is taken, and nothing was overwritten.
	ErrExists = errors.New("remote backup: file exists on the target (412): nothing overwritten")
	// ErrStatus is any other unexpected HTTP status.
	ErrStatus = errors.New("remote backup: unexpected HTTP status")
)

// backupName is a backup directory's name as backup.Write makes it.
var backupName = regexp.MustCompile(`^vigil-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

// partFile is a part's file name as backup.Write makes it.
var partFile = regexp.MustCompile(`^part-[0-9]{3,6}\.age$`)

// IsURL reports whether to names a remote target (https://…) rather than
// a directory.
func IsURL(to string) bool {
	return strings.HasPrefix(to, "https://") || strings.HasPrefix(to, "http://")
}

// Client talks to one remote target.
type Client struct {
	base  *url.URL // ends in "/"
	hc    *http.Client
	token string
}

// NewClient checks raw (https only, no user info, query or fragment),
// trusts the system roots plus caPEM when given, and sends token as a
// bearer token (required: the receiver accepts nothing without it).
// Errors never echo the URL's query or the token.
func NewClient(raw string, caPEM []byte, token string) (*Client, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("remote backup target: not a URL")
	}
	switch {
	case u.Scheme != "https":
		return nil, errors.New("remote backup target: want https:// (TLS verified)")
	case u.User != nil:
		return nil, errors.New("remote backup target: no user info in the URL: give the token in a file")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("remote backup target: no query or fragment in the URL")
	case u.Host == "":
		return nil, errors.New("remote backup target: no host")
	case token == "":
		return nil, errors.New("remote backup target: a bearer token is required")
	case strings.ContainsAny(token, "\r\n"):
		return nil, errors.New("remote backup target: the token holds a line break")
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("remote backup target CA: no PEM certificate in the file")
		}
		tc.RootCAs = pool
	}
	tr := &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: 30 * time.Second, ResponseHeaderTimeout: 5 * time.Minute, IdleConnTimeout: time.Minute}
	return &Client{base: u, hc: &http.Client{Transport: tr, CheckRedirect: noRedirect}, token: token}, nil
}

// noRedirect: a redirect could carry the token elsewhere.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Location names where a backup lives on the target, for messages.
func (c *Client) Location(name string) string { return c.base.JoinPath(name).String() + "/" }

// Upload sends the backup directory dir (as backup.Write made it) to the
// target: every part, then manifest.json, then manifest.sig last, each a
// create-only PUT. The manifest is read to know the parts; it is not
// verified here (the writer just did).
func (c *Client) Upload(ctx context.Context, dir string) error {
	name := filepath.Base(dir)
	if !backupName.MatchString(name) {
		return fmt.Errorf("upload backup: %q is not a backup directory name", name)
	}
	mb, err := os.ReadFile(filepath.Join(dir, backup.ManifestFile))
	if err != nil {
		return fmt.Errorf("upload backup %s: %w", name, err)
	}
	m, err := backup.ParseManifest(mb)
	if err != nil {
		return fmt.Errorf("upload backup %s: %w", name, err)
	}
	files := make([]string, 0, len(m.Parts)+2)
	for _, p := range m.Parts {
		files = append(files, p.File)
	}
	files = append(files, backup.ManifestFile, backup.SignatureFile)
	for _, f := range files {
		if err := c.put(ctx, name, f, filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("upload backup %s: %s: %w", name, f, err)
		}
	}
	return nil
}

func (c *Client) put(ctx context.Context, name, file, local string) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base.JoinPath(name, file).String(), f)
	if err != nil {
		return err
	}
	req.ContentLength = fi.Size()
	req.Header.Set("If-None-Match", "*")
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return scrub(err)
	}
	defer resp.Body.Close()
	msg := readMessage(resp.Body)
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusPreconditionFailed:
		return ErrExists
	default:
		return fmt.Errorf("PUT: %d %s: %w", resp.StatusCode, msg, ErrStatus)
	}
}

// Download fetches the backup at the target URL from (…/vigil-…/, as
// Location returns it) into a new directory under into and returns it.
// It fetches manifest.json and manifest.sig first and checks the
// signature with pub before fetching any part; each part is read up to
// its size plus one byte (backup.Verify then tells a short or long part).
func Download(ctx context.Context, from string, caPEM []byte, token string, pub []byte, into string) (string, error) {
	u, err := url.Parse(from)
	if err != nil {
		return "", errors.New("download backup: --from is not a URL")
	}
	name := strings.TrimSuffix(u.Path, "/")
	name = name[strings.LastIndex(name, "/")+1:]
	if !backupName.MatchString(name) {
		return "", fmt.Errorf("download backup: the URL's last path element %q is not a backup name (vigil-…)", name)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), name)
	c, err := NewClient(u.String(), caPEM, token)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(into, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("download backup: %w", err)
	}
	mb, err := c.get(ctx, name, backup.ManifestFile, filepath.Join(dir, backup.ManifestFile), 1<<20)
	if err != nil {
		return "", fmt.Errorf("download backup %s: %s: %w", name, backup.ManifestFile, err)
	}
	sb, err := c.get(ctx, name, backup.SignatureFile, filepath.Join(dir, backup.SignatureFile), 1<<20)
	if err != nil {
		return "", fmt.Errorf("download backup %s: %s: %w", name, backup.SignatureFile, err)
	}
	m, err := backup.VerifyManifest(mb, sb, pub)
	if err != nil {
		return "", fmt.Errorf("download backup %s: %w", name, err)
	}
	for _, p := range m.Parts {
		if _, err := c.get(ctx, name, p.File, filepath.Join(dir, p.File), p.Size+1); err != nil {
			if errors.Is(err, errNotFound) {
				continue // backup.Verify names the missing part
			}
			return "", fmt.Errorf("download backup %s: part %s (%s): %w", name, p.Name, p.File, err)
		}
	}
	return dir, nil
}

var errNotFound = errors.New("not found (404)")

// get fetches name/file into local (created new), at most limit bytes;
// it returns the bytes when limit is small (≤ 1 MiB).
func (c *Client) get(ctx context.Context, name, file, local string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.JoinPath(name, file).String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, scrub(err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, errNotFound
	default:
		return nil, fmt.Errorf("GET: %d %s: %w", resp.StatusCode, readMessage(resp.Body), ErrStatus)
	}
	f, err := os.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var w io.Writer = f
	var small strings.Builder
	if limit <= 1<<20 {
		w = io.MultiWriter(f, &small)
	}
	if _, err := io.Copy(w, io.LimitReader(resp.Body, limit)); err != nil {
		return nil, scrub(err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return []byte(small.String()), nil
}

// readMessage is the start of an error body, for the error message.
func readMessage(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 512))
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
}

// scrub keeps the operation and cause of a transport error but not the
// URL it carries (a url.Error prints it).
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
