package firmware

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"vigil/internal/clock"
)

// Refusal is why a device refused an update. Each is a TUF/Uptane attack
// the verifier stops.
type Refusal string

// The refusals.
const (
	RefusedRollback    Refusal = "rollback"       // older metadata replayed, or an older firmware version chosen
	RefusedFrozen      Refusal = "frozen"         // expired metadata: updates frozen
	RefusedMixed       Refusal = "mixed_snapshot" // metadata that does not belong together
	RefusedOversize    Refusal = "oversize"       // more bytes than declared (endless data)
	RefusedUntrusted   Refusal = "untrusted"      // not signed by the role's threshold of keys (e.g. the online key alone)
	RefusedNotApproved Refusal = "not_approved"   // the director chose an image the release keys did not sign, or a different one
	RefusedHardware    Refusal = "wrong_hardware" // an image for other hardware
	RefusedIncomplete  Refusal = "incomplete"     // part of a bundle could not be fetched: nothing installed
	RefusedCorrupt     Refusal = "corrupt"        // an image whose hash differs from the signed one
	RefusedInvalid     Refusal = "invalid"        // malformed metadata
)

// RefusedError is an update the device refused.
type RefusedError struct {
	Reason Refusal
	Err    error
}

func (e *RefusedError) Error() string { return fmt.Sprintf("update refused (%s): %v", e.Reason, e.Err) }
func (e *RefusedError) Unwrap() error { return e.Err }

// ReasonOf is the refusal behind err, or "" when err is not a refusal (a
// network failure, say).
func ReasonOf(err error) Refusal {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

func refused(r Refusal, format string, args ...any) error {
	return &RefusedError{Reason: r, Err: fmt.Errorf(format, args...)}
}

// classify maps go-tuf's errors to refusals; phase names what was
// fetched for the message.
func classify(phase string, err error) error {
	var (
		exp    *metadata.ErrExpiredMetadata
		badV   *metadata.ErrBadVersionNumber
		unsig  *metadata.ErrUnsignedMetadata
		lenMis *metadata.ErrDownloadLengthMismatch
		hash   *metadata.ErrLengthOrHashMismatch
		repo   *metadata.ErrRepository
		dlHTTP *metadata.ErrDownloadHTTP
		val    *metadata.ErrValue
		typ    *metadata.ErrType
	)
	wrap := func(r Refusal) error { return &RefusedError{Reason: r, Err: fmt.Errorf("%s: %w", phase, err)} }
	switch {
	case errors.As(err, &exp):
		return wrap(RefusedFrozen)
	case errors.As(err, &badV):
		if strings.Contains(badV.Msg, "must be >=") {
			return wrap(RefusedRollback)
		}
		return wrap(RefusedMixed)
	case errors.As(err, &unsig):
		return wrap(RefusedUntrusted)
	case errors.As(err, &lenMis):
		return wrap(RefusedOversize)
	case errors.As(err, &hash), errors.As(err, &repo):
		return wrap(RefusedMixed)
	case errors.As(err, &dlHTTP):
		return fmt.Errorf("%s: %w", phase, err) // unavailable: try again later
	case errors.As(err, &val), errors.As(err, &typ):
		return wrap(RefusedInvalid)
	}
	return fmt.Errorf("%s: %w", phase, err)
}

// ClientConfig is a device's update client.
type ClientConfig struct {
	// BaseURL is the server's firmware API, https://HOST:PORT/firmware/v1:
	// the device reads BaseURL/devices/ID/director/… and
	// BaseURL/devices/ID/images/{metadata,targets}/….
	BaseURL  string
	DeviceID string
	// Secret is the device's bearer credential ("" when the HTTP client
	// presents a client certificate instead).
	Secret string
	HTTP   *http.Client
	// Dir keeps the trusted metadata of both repositories and the
	// installed state; it must survive restarts (rollback protection).
	Dir string
	// ImageRoot and DirectorRoot are the provisioned trusted roots, used
	// until Dir holds newer ones.
	ImageRoot, DirectorRoot []byte
	Hardware                string
	Clock                   clock.Clock
}

// Installed is what a device runs.
type Installed struct {
	Version string   `json:"version"`
	Images  []string `json:"images"`
	SHA256  []string `json:"sha256"`
}

// Result is one update check.
type Result struct {
	// Installed is true when new images were verified and installed.
	Installed bool
	Images    []Image
	Data      map[string][]byte
	Version   Version // the version now running
}

// Client verifies and installs updates for one device.
type Client struct {
	cfg ClientConfig
}

// NewClient checks the configuration and prepares Dir.
func NewClient(cfg ClientConfig, installed Version) (*Client, error) {
	if cfg.BaseURL == "" || cfg.DeviceID == "" || cfg.Dir == "" || len(cfg.ImageRoot) == 0 || len(cfg.DirectorRoot) == 0 {
		return nil, errors.New("firmware client: BaseURL, DeviceID, Dir and both roots are required")
	}
	if !ValidHardware(cfg.Hardware) {
		return nil, fmt.Errorf("firmware client: hardware %q", cfg.Hardware)
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	c := &Client{cfg: cfg}
	for _, d := range []string{"image", "director", "download"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("firmware client: %w", err)
		}
	}
	if _, err := os.Stat(c.installedPath()); errors.Is(err, os.ErrNotExist) {
		if err := c.writeInstalled(Installed{Version: installed.String()}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) installedPath() string { return filepath.Join(c.cfg.Dir, "installed.json") }

// Installed is what the device runs now.
func (c *Client) Installed() (Installed, Version, error) {
	var in Installed
	b, err := os.ReadFile(c.installedPath())
	if err != nil {
		return in, Version{}, fmt.Errorf("installed firmware: %w", err)
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return in, Version{}, fmt.Errorf("installed firmware: %w", err)
	}
	v, err := ParseVersion(in.Version)
	return in, v, err
}

func (c *Client) writeInstalled(in Installed) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("installed firmware: %w", err)
	}
	tmp := c.installedPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("installed firmware: %w", err)
	}
	if err := os.Rename(tmp, c.installedPath()); err != nil {
		return fmt.Errorf("installed firmware: %w", err)
	}
	return nil
}

// updater is a fresh go-tuf updater for one repository, trusting the
// newest root Dir holds (or the provisioned one), on the device's clock.
func (c *Client) updater(ctx context.Context, repo string, provisioned []byte, metaURL, targetsURL string) (*updater.Updater, error) {
	dir := filepath.Join(c.cfg.Dir, repo)
	root, err := os.ReadFile(filepath.Join(dir, "root.json"))
	if err != nil {
		root = provisioned
	}
	cfg, err := config.New(metaURL, root)
	if err != nil {
		return nil, fmt.Errorf("%s repository: %w", repo, err)
	}
	cfg.LocalMetadataDir = dir
	cfg.LocalTargetsDir = filepath.Join(c.cfg.Dir, "download")
	cfg.RemoteTargetsURL = targetsURL
	cfg.PrefixTargetsWithHash = false
	cfg.Fetcher = &fetcher{ctx: ctx, c: c}
	up, err := updater.New(cfg)
	if err != nil {
		return nil, classify(repo+" repository", err)
	}
	up.UnsafeSetRefTime(c.cfg.Clock.Now())
	return up, nil
}

// Update asks the director what to run and installs it when, and only
// when, the image repository's offline-signed targets list the same image
// (length and hashes), for this hardware, not older than what runs. A
// bundle of several images installs whole or not at all.
func (c *Client) Update(ctx context.Context) (Result, error) {
	in, cur, err := c.Installed()
	if err != nil {
		return Result{}, err
	}
	res := Result{Version: cur}
	base := strings.TrimSuffix(c.cfg.BaseURL, "/")
	devURL := base + "/devices/" + url.PathEscape(c.cfg.DeviceID)
	dirURL := devURL + "/director/"
	dir, err := c.updater(ctx, "director", c.cfg.DirectorRoot, dirURL, dirURL+"targets/")
	if err != nil {
		return res, err
	}
	if err := dir.Refresh(); err != nil {
		return res, classify("director repository", err)
	}
	chosen := dir.GetTopLevelTargets()
	if len(chosen) == 0 {
		return res, nil // nothing chosen for this device
	}
	img, err := c.updater(ctx, "image", c.cfg.ImageRoot, devURL+"/images/metadata/", devURL+"/images/targets/")
	if err != nil {
		return res, err
	}
	if err := img.Refresh(); err != nil {
		return res, classify("image repository", err)
	}
	names := make([]string, 0, len(chosen))
	for n := range chosen {
		names = append(names, n)
	}
	slices.Sort(names)
	var images []Image
	var files []*metadata.TargetFiles
	var newest Version
	for _, n := range names {
		d := chosen[n]
		want, ok := img.GetTopLevelTargets()[n]
		if !ok {
			return res, refused(RefusedNotApproved, "the director chose %s, which the release keys did not sign", n)
		}
		if !d.Equal(*want) || !customEqual(d.Custom, want.Custom) {
			return res, refused(RefusedNotApproved, "the director's %s differs from the signed release (length, hashes or version)", n)
		}
		im, err := imageOf(n, want)
		if err != nil {
			return res, refused(RefusedInvalid, "%v", err)
		}
		if !ForHardware(im.Hardware, c.cfg.Hardware) {
			return res, refused(RefusedHardware, "%s is for hardware %s, this device is %s", n, im.Hardware, c.cfg.Hardware)
		}
		if im.Version.Compare(cur) < 0 {
			return res, refused(RefusedRollback, "%s is version %s, older than the running %s", n, im.Version, cur)
		}
		if im.Version.Compare(newest) > 0 {
			newest = im.Version
		}
		images, files = append(images, im), append(files, want)
	}
	if newest.Compare(cur) == 0 && slices.Equal(in.Images, names) {
		return res, nil // up to date
	}
	data := map[string][]byte{}
	for i, tf := range files {
		_, b, err := img.DownloadTarget(tf, filepath.Join(c.cfg.Dir, "download", images[i].Name), "")
		if err != nil {
			var dlHTTP *metadata.ErrDownloadHTTP
			var hash *metadata.ErrLengthOrHashMismatch
			switch {
			case errors.As(err, &dlHTTP):
				return res, &RefusedError{Reason: RefusedIncomplete, Err: fmt.Errorf("image %s: %w: nothing installed", tf.Path, err)}
			case errors.As(err, &hash):
				return res, &RefusedError{Reason: RefusedCorrupt, Err: fmt.Errorf("image %s: %w", tf.Path, err)}
			}
			return res, classify("image "+tf.Path, err)
		}
		data[tf.Path] = b
	}
	sums := make([]string, len(images))
	for i, im := range images {
		sums[i] = im.SHA256
	}
	if err := c.writeInstalled(Installed{Version: newest.String(), Images: names, SHA256: sums}); err != nil {
		return res, err
	}
	return Result{Installed: true, Images: images, Data: data, Version: newest}, nil
}

func customEqual(a, b *json.RawMessage) bool {
	if a == nil || b == nil {
		return a == b
	}
	var x, y Custom
	if json.Unmarshal(*a, &x) != nil || json.Unmarshal(*b, &y) != nil {
		return false
	}
	return x == y
}

// StatusReport is what a device tells the server after a check.
type StatusReport struct {
	Version string  `json:"version"`
	State   string  `json:"state"` // installed, failed, checking
	Error   string  `json:"error,omitempty"`
	Refusal Refusal `json:"refusal,omitempty"`
	// SHA256 is the running image's hash, when the device knows it.
	SHA256 string `json:"sha256,omitempty"`
}

// Report sends a status report.
func (c *Client) Report(ctx context.Context, r StatusReport) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("report firmware status: %w", err)
	}
	u := strings.TrimSuffix(c.cfg.BaseURL, "/") + "/devices/" + url.PathEscape(c.cfg.DeviceID) + "/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("report firmware status: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	c.authorize(req)
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("report firmware status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("report firmware status: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// ReportOf is the report for an update's outcome.
func ReportOf(res Result, err error) StatusReport {
	v := res.Version.String()
	switch {
	case err != nil:
		return StatusReport{Version: v, State: "failed", Error: truncate(err.Error(), 500), Refusal: ReasonOf(err)}
	case res.Installed:
		return StatusReport{Version: v, State: "installed"}
	}
	return StatusReport{Version: v, State: "checking"}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (c *Client) authorize(req *http.Request) {
	if c.cfg.Secret != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Secret)
	}
}

// fetcher is go-tuf's Fetcher over the device's authenticated HTTPS
// client: it reads at most maxLength bytes and aborts there.
type fetcher struct {
	ctx context.Context
	c   *Client
}

func (f *fetcher) DownloadFile(u string, maxLength int64, _ time.Duration) ([]byte, error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	f.c.authorize(req)
	resp, err := f.c.cfg.HTTP.Do(req)
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: redactURL(u)}
	}
	if resp.ContentLength > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: %d bytes announced, at most %d expected", redactURL(u), resp.ContentLength, maxLength)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	if int64(len(b)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: more than the %d bytes expected; download aborted", redactURL(u), maxLength)}
	}
	return b, nil
}

// redactURL keeps only the path's last element for error text.
func redactURL(u string) string {
	if i := strings.LastIndexByte(u, '/'); i >= 0 {
		return u[i+1:]
	}
	return u
}

// hexSum is a convenience for tests and the simulator.
func hexSum(b []byte) string { return hex.EncodeToString(b) }
