package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"vigil/internal/clock"
	"vigil/internal/firmware"
	"vigil/internal/store"
)

// Store is what the service needs of the store.
type Store interface {
	store.FirmwareStore
	GetDevice(ctx context.Context, id string) (store.Device, error)
	ListDevices(ctx context.Context, orgID string) ([]store.Device, error)
}

// Config tunes the service; zero values take defaults.
type Config struct {
	// TimestampTTL is how long a timestamp the server signs is valid
	// (default 24h): a device that cannot get a fresher one for that
	// long refuses updates as frozen.
	TimestampTTL time.Duration
	// DirectorTTL is how long a director targets is valid (default 7 days).
	DirectorTTL time.Duration
	// DirectorRootTTL is the director root's lifetime (default 10 years).
	DirectorRootTTL time.Duration
	// ProblemAfter is how long a device may run a version with a known
	// problem before it is reported (default 24h).
	ProblemAfter time.Duration
	// MaxImageBytes caps one image (default 64 MiB).
	MaxImageBytes int64
	// StaleAfter: a device that has not checked for updates for this long
	// is stale (default 7 days).
	StaleAfter time.Duration
	// CheckEvery is how often the known-problem check runs (default 5m).
	CheckEvery time.Duration
}

func (c Config) withDefaults() Config {
	if c.TimestampTTL <= 0 {
		c.TimestampTTL = 24 * time.Hour
	}
	if c.DirectorTTL <= 0 {
		c.DirectorTTL = 7 * 24 * time.Hour
	}
	if c.DirectorRootTTL <= 0 {
		c.DirectorRootTTL = 10 * 365 * 24 * time.Hour
	}
	if c.ProblemAfter <= 0 {
		c.ProblemAfter = 24 * time.Hour
	}
	if c.MaxImageBytes <= 0 {
		c.MaxImageBytes = 64 << 20
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = 7 * 24 * time.Hour
	}
	if c.CheckEvery <= 0 {
		c.CheckEvery = 5 * time.Minute
	}
	return c
}

// Service is the server side: it takes verified releases, serves both
// repositories and signs the director's choices with the online key.
type Service struct {
	st     Store
	online *firmware.Signer
	clk    clock.Clock
	cfg    Config
	mu     sync.Mutex // one signer of fresh metadata at a time
}

// NewService makes the service over the store, with the online key.
func NewService(st Store, online *firmware.Signer, clk clock.Clock, cfg Config) *Service {
	return &Service{st: st, online: online, clk: clk, cfg: cfg.withDefaults()}
}

// Config is the service's configuration with defaults filled in.
func (s *Service) Config() Config { return s.cfg }

// OnlineKey is the server's online public key.
func (s *Service) OnlineKey() *metadata.Key { return s.online.Key() }

// ErrNoRelease is asked-for metadata before any release was uploaded.
var ErrNoRelease = errors.New("firmware: no release uploaded yet")

// Upload verifies a bundle against the trusted root and stores it.
func (s *Service) Upload(ctx context.Context, b firmware.Bundle) (firmware.Release, error) {
	roots, err := s.st.ListFirmwareRoots(ctx, store.FirmwareImageRepo)
	if err != nil {
		return firmware.Release{}, fmt.Errorf("upload release: %w", err)
	}
	var trusted []byte
	if len(roots) > 0 {
		trusted = roots[len(roots)-1].Body
	}
	for name, data := range b.Images {
		if int64(len(data)) > s.cfg.MaxImageBytes {
			return firmware.Release{}, firmware.Refuse("image %s is %d bytes, more than the %d allowed", name, len(data), s.cfg.MaxImageBytes)
		}
	}
	now := s.clk.Now()
	rel, err := firmware.VerifyRelease(trusted, b, s.online.Key(), now)
	if err != nil {
		return rel, err
	}
	cur, err := s.st.GetFirmwareMeta(ctx, store.FirmwareImageRepo, metadata.TARGETS)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return rel, fmt.Errorf("upload release: %w", err)
	case string(cur.Body) == string(rel.Targets):
		return rel, firmware.Refuse("targets version %d is already uploaded", rel.TargetsVersion)
	case rel.TargetsVersion <= cur.Version:
		return rel, firmware.Refuse("targets version %d is not newer than the uploaded version %d (rollback)", rel.TargetsVersion, cur.Version)
	}
	up := store.FirmwareUpload{At: now,
		Targets: store.FirmwareMeta{Repo: store.FirmwareImageRepo, Role: metadata.TARGETS, Version: rel.TargetsVersion, Body: rel.Targets, Expires: rel.TargetsExpires, UpdatedAt: now}}
	for _, r := range rel.Roots {
		up.Roots = append(up.Roots, store.FirmwareMeta{Repo: store.FirmwareImageRepo, Role: metadata.ROOT, Version: r.Version, Body: r.Body, Expires: r.Expires, UpdatedAt: now})
	}
	for _, im := range rel.Images {
		up.Images = append(up.Images, store.FirmwareImage{Name: im.Name, Hardware: im.Hardware, Version: im.Version.String(), KnownProblem: im.KnownProblem,
			Length: im.Length, SHA256: im.SHA256, TargetsVersion: rel.TargetsVersion, CreatedAt: now, Bytes: b.Images[im.Name]})
	}
	if err := s.st.PutFirmwareUpload(ctx, up); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return rel, firmware.Refuse("an image of this release was uploaded before with other bytes, or a newer targets version is stored")
		}
		return rel, fmt.Errorf("upload release: %w", err)
	}
	return rel, nil
}

// Releases is the current release set.
func (s *Service) Releases(ctx context.Context) (ReleaseSet, error) {
	return LoadReleaseSet(ctx, s.st)
}

// releaseReader is what LoadReleaseSet needs.
type releaseReader interface {
	GetFirmwareMeta(ctx context.Context, repo, role string) (store.FirmwareMeta, error)
	ListFirmwareImages(ctx context.Context) ([]store.FirmwareImage, error)
}

// LoadReleaseSet reads the approved images (empty before any upload).
func LoadReleaseSet(ctx context.Context, st releaseReader) (ReleaseSet, error) {
	t, err := st.GetFirmwareMeta(ctx, store.FirmwareImageRepo, metadata.TARGETS)
	if errors.Is(err, store.ErrNotFound) {
		return ReleaseSet{Images: map[string]store.FirmwareImage{}}, nil
	}
	if err != nil {
		return ReleaseSet{}, fmt.Errorf("release set: %w", err)
	}
	all, err := st.ListFirmwareImages(ctx)
	if err != nil {
		return ReleaseSet{}, fmt.Errorf("release set: %w", err)
	}
	return NewReleaseSet(t.Version, all), nil
}

// parseMetaFile splits "N.root.json" and "ROLE.json".
func parseMetaFile(file string) (role string, version int64, ok bool) {
	base, found := strings.CutSuffix(file, ".json")
	if !found {
		return "", 0, false
	}
	if v, r, found := strings.Cut(base, "."); found {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || r != metadata.ROOT {
			return "", 0, false
		}
		return r, n, true
	}
	switch base {
	case metadata.TIMESTAMP, metadata.SNAPSHOT, metadata.TARGETS:
		return base, 0, true
	}
	return "", 0, false
}

// ImageMetadata serves a file of the image repository: N.root.json,
// timestamp.json, snapshot.json or targets.json. ErrNotFound for anything
// else.
func (s *Service) ImageMetadata(ctx context.Context, file string) ([]byte, error) {
	role, v, ok := parseMetaFile(file)
	if !ok {
		return nil, fmt.Errorf("image metadata %q: %w", file, store.ErrNotFound)
	}
	if role == metadata.ROOT {
		return s.root(ctx, store.FirmwareImageRepo, v)
	}
	t, err := s.st.GetFirmwareMeta(ctx, store.FirmwareImageRepo, metadata.TARGETS)
	if err != nil {
		return nil, fmt.Errorf("image metadata: %w", err)
	}
	if role == metadata.TARGETS {
		return t.Body, nil
	}
	f, err := s.fresh(ctx, store.FirmwareImageRepo, strconv.FormatInt(t.Version, 10), func(version int64) ([]byte, error) { return t.Body, nil })
	if err != nil {
		return nil, err
	}
	if role == metadata.SNAPSHOT {
		return f.Snapshot, nil
	}
	return f.Timestamp, nil
}

func (s *Service) root(ctx context.Context, repo string, v int64) ([]byte, error) {
	roots, err := s.st.ListFirmwareRoots(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("root %d: %w", v, err)
	}
	for _, r := range roots {
		if r.Version == v {
			return r.Body, nil
		}
	}
	return nil, fmt.Errorf("root %d: %w", v, store.ErrNotFound)
}

// fresh returns the repository's snapshot and timestamp, signing new ones
// (and, through targets, a new targets for a director) when what they
// cover changed or the timestamp is in the last half of its life.
func (s *Service) fresh(ctx context.Context, repo, covers string, targets func(version int64) ([]byte, error)) (firmware.Freshness, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clk.Now()
	ts, err := s.st.GetFirmwareMeta(ctx, repo, metadata.TIMESTAMP)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return firmware.Freshness{}, fmt.Errorf("%s timestamp: %w", repo, err)
	}
	if err == nil && ts.Covers == covers && ts.Expires.Sub(now) > s.cfg.TimestampTTL/2 {
		snap, err := s.st.GetFirmwareMeta(ctx, repo, metadata.SNAPSHOT)
		if err != nil {
			return firmware.Freshness{}, fmt.Errorf("%s snapshot: %w", repo, err)
		}
		return firmware.Freshness{Version: ts.Version, Snapshot: snap.Body, Timestamp: ts.Body, Expires: ts.Expires}, nil
	}
	version := ts.Version + 1
	tb, err := targets(version)
	if err != nil {
		return firmware.Freshness{}, err
	}
	f, err := firmware.SignFreshness(s.online, tb, version, now, s.cfg.TimestampTTL)
	if err != nil {
		return firmware.Freshness{}, err
	}
	ms := []store.FirmwareMeta{
		{Repo: repo, Role: metadata.SNAPSHOT, Version: version, Body: f.Snapshot, Covers: covers, UpdatedAt: now},
		{Repo: repo, Role: metadata.TIMESTAMP, Version: version, Body: f.Timestamp, Expires: f.Expires, Covers: covers, UpdatedAt: now},
	}
	if repo != store.FirmwareImageRepo {
		ms = append(ms, store.FirmwareMeta{Repo: repo, Role: metadata.TARGETS, Version: version, Body: tb, Covers: covers, UpdatedAt: now})
	}
	if err := s.st.PutFirmwareMetas(ctx, ms); err != nil {
		return firmware.Freshness{}, fmt.Errorf("%s: store signed metadata: %w", repo, err)
	}
	return f, nil
}

// Image is an approved image's bytes (ErrNotFound for one not approved).
func (s *Service) Image(ctx context.Context, name string) ([]byte, error) {
	rs, err := s.Releases(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := rs.Images[name]; !ok {
		return nil, fmt.Errorf("image %q: %w", name, store.ErrNotFound)
	}
	im, err := s.st.GetFirmwareImage(ctx, name)
	if err != nil {
		return nil, err
	}
	return im.Bytes, nil
}

// DirectorRoot is the director repository's root version 1 (made and
// stored on first use). Devices are provisioned with it.
func (s *Service) DirectorRoot(ctx context.Context) ([]byte, error) {
	b, err := s.root(ctx, store.FirmwareDirectorRepo, 1)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return b, err
	}
	now := s.clk.Now()
	exp := now.Add(s.cfg.DirectorRootTTL)
	b, err = firmware.DirectorRoot(s.online, 1, exp)
	if err != nil {
		return nil, err
	}
	if err := s.st.PutFirmwareRoot(ctx, store.FirmwareMeta{Repo: store.FirmwareDirectorRepo, Role: metadata.ROOT, Version: 1, Body: b, Expires: exp, UpdatedAt: now}); err != nil {
		return nil, fmt.Errorf("director root: %w", err)
	}
	// Another instance may have stored its own first: serve the stored one.
	return s.root(ctx, store.FirmwareDirectorRepo, 1)
}

// ImageRoot is the image repository's first root, which devices are
// provisioned with (ErrNoRelease before any upload).
func (s *Service) ImageRoot(ctx context.Context) ([]byte, error) {
	roots, err := s.st.ListFirmwareRoots(ctx, store.FirmwareImageRepo)
	if err != nil {
		return nil, fmt.Errorf("image root: %w", err)
	}
	if len(roots) == 0 {
		return nil, ErrNoRelease
	}
	return roots[0].Body, nil
}

// DirectorMetadata serves a file of a device's director repository, the
// device's current choice signed by the online key.
func (s *Service) DirectorMetadata(ctx context.Context, deviceID, file string) ([]byte, error) {
	role, v, ok := parseMetaFile(file)
	if !ok {
		return nil, fmt.Errorf("director metadata %q: %w", file, store.ErrNotFound)
	}
	if role == metadata.ROOT {
		if v == 1 {
			return s.DirectorRoot(ctx)
		}
		return s.root(ctx, store.FirmwareDirectorRepo, v)
	}
	dev, err := s.st.GetDevice(ctx, deviceID)
	if err != nil {
		return nil, fmt.Errorf("director metadata: %w", err)
	}
	images, _, err := s.choice(ctx, dev)
	if err != nil {
		return nil, err
	}
	covers := coversOf(images)
	repo := store.FirmwareDirectorOf(deviceID)
	f, err := s.fresh(ctx, repo, covers, func(version int64) ([]byte, error) {
		return firmware.DirectorTargets(s.online, version, images, s.clk.Now().Add(s.cfg.DirectorTTL))
	})
	if err != nil {
		return nil, err
	}
	switch role {
	case metadata.SNAPSHOT:
		return f.Snapshot, nil
	case metadata.TIMESTAMP:
		return f.Timestamp, nil
	}
	t, err := s.st.GetFirmwareMeta(ctx, repo, metadata.TARGETS)
	if err != nil {
		return nil, fmt.Errorf("director targets: %w", err)
	}
	return t.Body, nil
}

func coversOf(images []firmware.Image) string {
	h := sha256.New()
	for _, im := range images {
		fmt.Fprintf(h, "%s %s %d %s\n", im.Name, im.SHA256, im.Length, im.Version)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// choice is what the director names for a device now.
func (s *Service) choice(ctx context.Context, dev store.Device) ([]firmware.Image, store.FirmwareRollout, error) {
	rs, err := s.Releases(ctx)
	if err != nil {
		return nil, store.FirmwareRollout{}, err
	}
	rollouts, err := s.st.ListFirmwareRollouts(ctx, dev.OrgID)
	if err != nil {
		return nil, store.FirmwareRollout{}, fmt.Errorf("director choice: %w", err)
	}
	im, r, ok := Choose(dev.ID, rollouts, rs)
	if !ok {
		return nil, store.FirmwareRollout{}, nil
	}
	img, err := ImageOf(im)
	if err != nil {
		return nil, r, err
	}
	return []firmware.Image{img}, r, nil
}

// Outcome is what a status report led to.
type Outcome struct {
	// Unknown is set when the device runs firmware that is not in the
	// release set: it must be quarantined.
	Unknown bool
	// Paused is the rollout this report paused automatically, if any.
	Paused *store.FirmwareRollout
}

// Status records a device's report, pauses its rollout when failures pile
// up, and says whether the device runs unknown firmware.
func (s *Service) Status(ctx context.Context, dev store.Device, r firmware.StatusReport) (Outcome, error) {
	if err := firmware.ValidateReport(r); err != nil {
		return Outcome{}, err
	}
	rs, err := s.Releases(ctx)
	if err != nil {
		return Outcome{}, err
	}
	_, ro, err := s.choice(ctx, dev)
	if err != nil {
		return Outcome{}, err
	}
	now := s.clk.Now()
	st := store.FirmwareDeviceStatus{DeviceID: dev.ID, OrgID: dev.OrgID, Version: r.Version, State: r.State,
		Error: r.Error, Refusal: string(r.Refusal), RolloutID: ro.ID, CheckedAt: now}
	if _, err := s.st.RecordFirmwareStatus(ctx, st); err != nil {
		return Outcome{}, fmt.Errorf("firmware status: %w", err)
	}
	out := Outcome{Unknown: !rs.Known(r.Version, r.SHA256)}
	if ro.ID != "" && r.State == "failed" {
		cur, err := s.st.GetFirmwareRollout(ctx, ro.ID)
		if err != nil {
			return out, fmt.Errorf("firmware status: %w", err)
		}
		if !cur.Paused && ShouldPause(cur) {
			cur.Paused, cur.PausedReason, cur.UpdatedAt = true, "failures", now
			if err := s.st.UpdateFirmwareRollout(ctx, cur); err != nil {
				return out, fmt.Errorf("pause rollout %s: %w", cur.ID, err)
			}
			out.Paused = &cur
		}
	}
	return out, nil
}

// Problems are the devices that have run a version with a known problem
// for longer than ProblemAfter and were not reported yet.
func (s *Service) Problems(ctx context.Context) ([]store.FirmwareDeviceStatus, error) {
	rs, err := s.Releases(ctx)
	if err != nil {
		return nil, err
	}
	all, err := s.st.ListFirmwareStatus(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("known problems: %w", err)
	}
	now := s.clk.Now()
	var out []store.FirmwareDeviceStatus
	for _, d := range all {
		if d.ProblemReportedAt.IsZero() && rs.KnownProblem(d.Version) && now.Sub(d.VersionSince) >= s.cfg.ProblemAfter {
			out = append(out, d)
		}
	}
	return out, nil
}
