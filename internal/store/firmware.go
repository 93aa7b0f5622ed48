package store

import (
	"context"
	"time"
)

// Firmware repositories: the image repository ("image") shared by every
// organisation, the director repository's root ("director"), and each
// device's director metadata ("device:ID").
const (
	FirmwareImageRepo    = "image"
	FirmwareDirectorRepo = "director"
)

// FirmwareDirectorOf is a device's director repository name.
func FirmwareDirectorOf(deviceID string) string { return "device:" + deviceID }

// FirmwareMeta is one TUF metadata file as served: the offline-signed
// targets of the image repository, and snapshot, timestamp and targets
// the server signs with its online key.
type FirmwareMeta struct {
	Repo    string
	Role    string // root, targets, snapshot, timestamp
	Version int64
	Body    []byte
	Expires time.Time
	// Covers is what a signed role was made over (the image targets
	// version for the image snapshot, the chosen images for a director
	// targets), so the server knows when to sign afresh.
	Covers    string
	UpdatedAt time.Time
}

// FirmwareImage is an approved image: a target of the image repository.
type FirmwareImage struct {
	Name           string
	Hardware       string
	Version        string
	KnownProblem   bool
	Length         int64
	SHA256         string
	TargetsVersion int64 // the newest targets version that lists it
	CreatedAt      time.Time
	Bytes          []byte // only from GetFirmwareImage
}

// FirmwareUpload is a verified release: new root versions, the targets
// and its images, stored in one transaction.
type FirmwareUpload struct {
	Roots   []FirmwareMeta // role root, repo image
	Targets FirmwareMeta
	Images  []FirmwareImage
	At      time.Time
}

// FirmwareRollout is a staged rollout of one image to an organisation's
// devices (all of them, or a named group), to a percentage of them.
type FirmwareRollout struct {
	ID      string
	OrgID   string
	Name    string   // the group's name, for people
	Image   string   // target name
	Devices []string // the group; empty: every device of the org
	Percent int      // 0–100
	Paused  bool
	// PausedReason is "manual" or "failures" (automatic).
	PausedReason string
	// Automatic pause: at least PauseFailures failures, or PausePercent
	// per cent of at least five attempts.
	PauseFailures int
	PausePercent  int
	CreatedBy     string
	CreatedAt     time.Time
	UpdatedAt     time.Time

	// Read only: devices that reported installing the image, or failing.
	Installed int
	Failed    int
}

// FirmwareDeviceStatus is a device's update state as it last reported it.
type FirmwareDeviceStatus struct {
	DeviceID  string
	OrgID     string
	Version   string
	State     string // installed, failed, checking
	Error     string
	Refusal   string
	RolloutID string // the rollout that chose its image, if any
	CheckedAt time.Time
	// VersionSince is when it first reported Version.
	VersionSince time.Time
	// ProblemReportedAt is when a known problem with Version was raised
	// (zero: not yet).
	ProblemReportedAt time.Time
}

// FirmwareStore keeps signed firmware releases, per-device update state
// and staged rollouts (issue 8).
type FirmwareStore interface {
	// PutFirmwareUpload stores a verified release in one transaction.
	// Its targets version must be newer than the stored one
	// (ErrConflict); an image name already stored with other bytes is a
	// conflict too (a release never changes).
	PutFirmwareUpload(ctx context.Context, u FirmwareUpload) error
	// ListFirmwareRoots is every root version of repo, oldest first.
	ListFirmwareRoots(ctx context.Context, repo string) ([]FirmwareMeta, error)
	// PutFirmwareRoot stores a root version (the director's, made by the
	// server); an existing version is left as it is.
	PutFirmwareRoot(ctx context.Context, m FirmwareMeta) error
	// GetFirmwareMeta is a repository's current metadata of a role
	// (ErrNotFound when there is none).
	GetFirmwareMeta(ctx context.Context, repo, role string) (FirmwareMeta, error)
	// PutFirmwareMetas replaces metadata signed by the server (snapshot,
	// timestamp, director targets) in one transaction.
	PutFirmwareMetas(ctx context.Context, ms []FirmwareMeta) error
	// ListFirmwareImages is every image ever released, without bytes, by
	// name.
	ListFirmwareImages(ctx context.Context) ([]FirmwareImage, error)
	// GetFirmwareImage is one image with its bytes.
	GetFirmwareImage(ctx context.Context, name string) (FirmwareImage, error)

	CreateFirmwareRollout(ctx context.Context, r FirmwareRollout) error
	// GetFirmwareRollout is one rollout with its counts.
	GetFirmwareRollout(ctx context.Context, id string) (FirmwareRollout, error)
	// ListFirmwareRollouts is an organisation's rollouts, newest first
	// ("" for every organisation), with their counts.
	ListFirmwareRollouts(ctx context.Context, orgID string) ([]FirmwareRollout, error)
	// UpdateFirmwareRollout sets percent, paused and reason.
	UpdateFirmwareRollout(ctx context.Context, r FirmwareRollout) error

	// RecordFirmwareStatus stores a device's report: its running version
	// (also store.Device.Firmware), state and check time. A version it
	// did not run before restarts VersionSince and clears
	// ProblemReportedAt. An installed or failed report with a RolloutID
	// counts toward that rollout. It returns the state before.
	RecordFirmwareStatus(ctx context.Context, s FirmwareDeviceStatus) (FirmwareDeviceStatus, error)
	// ListFirmwareStatus is the update state of an organisation's devices
	// that ever reported ("" for every organisation).
	ListFirmwareStatus(ctx context.Context, orgID string) ([]FirmwareDeviceStatus, error)
	// MarkFirmwareProblemReported records that the known problem of the
	// device's version was raised.
	MarkFirmwareProblemReported(ctx context.Context, deviceID string, at time.Time) error
}
