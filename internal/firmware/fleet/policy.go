package fleet

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"vigil/internal/firmware"
	"vigil/internal/store"
)

// Bucket is a device's place in a rollout, 0–99: the same for the same
// rollout and device every time, independent across rollouts. A device is
// in a rollout at p per cent when Bucket < p, so raising the percentage
// only adds devices.
func Bucket(rolloutID, deviceID string) int {
	h := sha256.Sum256([]byte(rolloutID + "\x00" + deviceID))
	return int(binary.BigEndian.Uint64(h[:8]) % 100)
}

// ReleaseSet is the approved images: those the newest offline-signed
// targets list.
type ReleaseSet struct {
	TargetsVersion int64
	Images         map[string]store.FirmwareImage // by name
}

// NewReleaseSet keeps the images of the given targets version.
func NewReleaseSet(targetsVersion int64, all []store.FirmwareImage) ReleaseSet {
	rs := ReleaseSet{TargetsVersion: targetsVersion, Images: map[string]store.FirmwareImage{}}
	for _, im := range all {
		if im.TargetsVersion == targetsVersion {
			rs.Images[im.Name] = im
		}
	}
	return rs
}

// Known reports whether a device running version (with image hash sha,
// "" when it did not say) runs approved firmware.
func (rs ReleaseSet) Known(version, sha string) bool {
	v, err := firmware.ParseVersion(version)
	if err != nil {
		return false
	}
	for _, im := range rs.Images {
		iv, err := firmware.ParseVersion(im.Version)
		if err == nil && iv == v && (sha == "" || sha == im.SHA256) {
			return true
		}
	}
	return false
}

// KnownProblem reports whether version is an approved image marked with a
// known problem.
func (rs ReleaseSet) KnownProblem(version string) bool {
	for _, im := range rs.Images {
		if im.Version == version && im.KnownProblem {
			return true
		}
	}
	return false
}

// Newest is the newest approved version ("" when none).
func (rs ReleaseSet) Newest() string {
	var best firmware.Version
	found := ""
	for _, im := range rs.Images {
		v, err := firmware.ParseVersion(im.Version)
		if err == nil && (found == "" || v.Compare(best) > 0) {
			best, found = v, im.Version
		}
	}
	return found
}

// ImageOf turns a stored image into an firmware.Image.
func ImageOf(im store.FirmwareImage) (firmware.Image, error) {
	v, err := firmware.ParseVersion(im.Version)
	if err != nil {
		return firmware.Image{}, fmt.Errorf("image %s: %w", im.Name, err)
	}
	return firmware.Image{Name: im.Name, Hardware: im.Hardware, Version: v, KnownProblem: im.KnownProblem, Length: im.Length, SHA256: im.SHA256}, nil
}

// InRollout reports whether a device is chosen by a rollout (paused or
// not).
func InRollout(r store.FirmwareRollout, deviceID string) bool {
	if len(r.Devices) > 0 && !slices.Contains(r.Devices, deviceID) {
		return false
	}
	return Bucket(r.ID, deviceID) < r.Percent
}

// Choose is the image the director names for a device: that of the newest
// running (not paused) rollout of the device's organisation that includes
// it and whose image is still approved. ok is false when none does (the
// director then names nothing and the device stays as it is).
func Choose(deviceID string, rollouts []store.FirmwareRollout, rs ReleaseSet) (store.FirmwareImage, store.FirmwareRollout, bool) {
	rs2 := slices.Clone(rollouts)
	slices.SortStableFunc(rs2, func(a, b store.FirmwareRollout) int { return b.CreatedAt.Compare(a.CreatedAt) })
	for _, r := range rs2 {
		if r.Paused || !InRollout(r, deviceID) {
			continue
		}
		if im, ok := rs.Images[r.Image]; ok {
			return im, r, true
		}
	}
	return store.FirmwareImage{}, store.FirmwareRollout{}, false
}

// Default automatic pause thresholds of a rollout.
const (
	DefaultPauseFailures = 3
	DefaultPausePercent  = 20
	minAttemptsPercent   = 5
)

// ShouldPause reports whether a rollout's failures call for an automatic
// pause: at least PauseFailures failures, or at least PausePercent per
// cent of at least five attempts.
func ShouldPause(r store.FirmwareRollout) bool {
	attempts := r.Installed + r.Failed
	if r.PauseFailures > 0 && r.Failed >= r.PauseFailures {
		return true
	}
	return r.PausePercent > 0 && attempts >= minAttemptsPercent && r.Failed*100 >= r.PausePercent*attempts
}

// DeviceCompliance is one device's line of the fleet compliance view.
type DeviceCompliance struct {
	DeviceID   string    `json:"device_id"`
	Running    string    `json:"running"`             // "" when unknown
	Target     string    `json:"target,omitempty"`    // the director's choice
	RolloutID  string    `json:"rollout,omitempty"`   // the rollout behind it
	Newest     string    `json:"newest,omitempty"`    // the newest approved version
	Behind     bool      `json:"behind"`              // older than its target (or than the newest when none)
	Approved   bool      `json:"approved"`            // running an approved version
	Problem    bool      `json:"known_problem"`       // running a version with a known problem
	State      string    `json:"state,omitempty"`     // last report: installed, failed, checking
	Refusal    string    `json:"refusal,omitempty"`   // last refusal
	LastCheck  time.Time `json:"last_check,omitzero"` // last report
	Stale      bool      `json:"stale"`               // no report within the stale period
	Quarantine string    `json:"quarantine,omitempty"`
}

// Compliance is the fleet view of an organisation's devices.
func Compliance(devs []store.Device, statuses []store.FirmwareDeviceStatus, rollouts []store.FirmwareRollout, rs ReleaseSet, now time.Time, staleAfter time.Duration) []DeviceCompliance {
	byDev := map[string]store.FirmwareDeviceStatus{}
	for _, s := range statuses {
		byDev[s.DeviceID] = s
	}
	newest := rs.Newest()
	out := make([]DeviceCompliance, 0, len(devs))
	for _, d := range devs {
		if !d.DisabledAt.IsZero() {
			continue
		}
		s := byDev[d.ID]
		c := DeviceCompliance{DeviceID: d.ID, Running: d.Firmware, Newest: newest, State: s.State, Refusal: s.Refusal,
			LastCheck: s.CheckedAt, Quarantine: d.Quarantine.Reason}
		if s.Version != "" {
			c.Running = s.Version
		}
		if im, r, ok := Choose(d.ID, rollouts, rs); ok {
			c.Target, c.RolloutID = im.Version, r.ID
		}
		c.Approved = rs.Known(c.Running, "")
		c.Problem = rs.KnownProblem(c.Running)
		ref := c.Target
		if ref == "" {
			ref = newest
		}
		if rv, err := firmware.ParseVersion(ref); err == nil {
			cur, err := firmware.ParseVersion(c.Running)
			c.Behind = err != nil || cur.Compare(rv) < 0
		}
		c.Stale = s.CheckedAt.IsZero() || now.Sub(s.CheckedAt) > staleAfter
		out = append(out, c)
	}
	return out
}

// RolloutRequest is a new rollout as an operator asks for it.
type RolloutRequest struct {
	Name          string
	Image         string
	Devices       []string
	Percent       int
	PauseFailures *int
	PausePercent  *int
}

// NewRollout checks a request against the release set and the
// organisation's devices and makes the rollout.
func NewRollout(req RolloutRequest, orgDevices []store.Device, rs ReleaseSet) (store.FirmwareRollout, error) {
	r := store.FirmwareRollout{Name: req.Name, Image: req.Image, Percent: req.Percent,
		PauseFailures: DefaultPauseFailures, PausePercent: DefaultPausePercent}
	if len(req.Name) > 64 {
		return r, &firmware.FieldError{Field: "name", Msg: "at most 64 characters"}
	}
	if _, ok := rs.Images[req.Image]; !ok {
		return r, &firmware.FieldError{Field: "image", Msg: "not an approved image (see the releases list)"}
	}
	if req.Percent < 0 || req.Percent > 100 {
		return r, &firmware.FieldError{Field: "percent", Msg: "want 0 to 100"}
	}
	if req.PauseFailures != nil {
		if *req.PauseFailures < 0 || *req.PauseFailures > 100000 {
			return r, &firmware.FieldError{Field: "pause_failures", Msg: "want 0 (off) to 100000"}
		}
		r.PauseFailures = *req.PauseFailures
	}
	if req.PausePercent != nil {
		if *req.PausePercent < 0 || *req.PausePercent > 100 {
			return r, &firmware.FieldError{Field: "pause_percent", Msg: "want 0 (off) to 100"}
		}
		r.PausePercent = *req.PausePercent
	}
	if len(req.Devices) > 10000 {
		return r, &firmware.FieldError{Field: "devices", Msg: "at most 10000 devices; omit for every device"}
	}
	ids := map[string]bool{}
	for _, d := range orgDevices {
		ids[d.ID] = true
	}
	seen := map[string]bool{}
	for i, id := range req.Devices {
		if !ids[id] {
			return r, &firmware.FieldError{Field: fmt.Sprintf("devices[%d]", i), Msg: "no such device in this organisation"}
		}
		if seen[id] {
			return r, &firmware.FieldError{Field: fmt.Sprintf("devices[%d]", i), Msg: "given twice"}
		}
		seen[id] = true
	}
	r.Devices = slices.Clone(req.Devices)
	slices.Sort(r.Devices)
	return r, nil
}
