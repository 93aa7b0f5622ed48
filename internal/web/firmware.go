package web

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"vigil/internal/auth"
	"vigil/internal/firmware"
	"vigil/internal/firmware/fleet"
	"vigil/internal/store"
)

// firmwareRoutes are the firmware release, rollout and compliance API
// routes (issue 8). Releases are uploaded with `vigil firmware upload`
// (they are signed offline); here an organisation sees them, rolls them
// out to its devices and watches its fleet.
var firmwareRoutes = []Route{
	{"GET /api/v1/orgs/{org}/firmware/releases", OrgPerm, auth.DevicesRead, func(a *API) http.HandlerFunc { return a.firmwareReleases }},
	{"GET /api/v1/orgs/{org}/firmware/rollouts", OrgPerm, auth.DevicesRead, func(a *API) http.HandlerFunc { return a.listRollouts }},
	{"POST /api/v1/orgs/{org}/firmware/rollouts", OrgPerm, auth.DevicesWrite, func(a *API) http.HandlerFunc { return a.createRollout }},
	{"PUT /api/v1/orgs/{org}/firmware/rollouts/{id}", OrgPerm, auth.DevicesWrite, func(a *API) http.HandlerFunc { return a.updateRollout }},
	{"GET /api/v1/orgs/{org}/firmware/compliance", OrgPerm, auth.DevicesRead, func(a *API) http.HandlerFunc { return a.firmwareCompliance }},
}

// firmwareStore is what the firmware routes need of the directory: the
// store behind it offers it.
type firmwareStore interface {
	GetFirmwareMeta(ctx context.Context, repo, role string) (store.FirmwareMeta, error)
	ListFirmwareImages(ctx context.Context) ([]store.FirmwareImage, error)
	CreateFirmwareRollout(ctx context.Context, r store.FirmwareRollout) error
	GetFirmwareRollout(ctx context.Context, id string) (store.FirmwareRollout, error)
	ListFirmwareRollouts(ctx context.Context, orgID string) ([]store.FirmwareRollout, error)
	UpdateFirmwareRollout(ctx context.Context, r store.FirmwareRollout) error
	ListFirmwareStatus(ctx context.Context, orgID string) ([]store.FirmwareDeviceStatus, error)
}

// firmwares is the directory's firmware store, or a 503 when it has none.
func (a *API) firmwares(w http.ResponseWriter) (firmwareStore, bool) {
	fs, ok := a.dir.(firmwareStore)
	if !ok || fs == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "firmware updates are not available")
		return nil, false
	}
	return fs, true
}

type imageJSON struct {
	Name         string `json:"name"`
	Hardware     string `json:"hardware"`
	Version      string `json:"version"`
	KnownProblem bool   `json:"known_problem"`
	Length       int64  `json:"length"`
	SHA256       string `json:"sha256"`
}

type rolloutJSON struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Image         string    `json:"image"`
	Devices       []string  `json:"devices"` // empty: every device of the organisation
	Percent       int       `json:"percent"`
	Paused        bool      `json:"paused"`
	PausedReason  string    `json:"paused_reason,omitempty"`
	PauseFailures int       `json:"pause_failures"`
	PausePercent  int       `json:"pause_percent"`
	Installed     int       `json:"installed"`
	Failed        int       `json:"failed"`
	CreatedBy     string    `json:"created_by"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func rolloutOut(r store.FirmwareRollout) rolloutJSON {
	devs := r.Devices
	if devs == nil {
		devs = []string{}
	}
	return rolloutJSON{ID: r.ID, Name: r.Name, Image: r.Image, Devices: devs, Percent: r.Percent, Paused: r.Paused, PausedReason: r.PausedReason,
		PauseFailures: r.PauseFailures, PausePercent: r.PausePercent, Installed: r.Installed, Failed: r.Failed,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

func (a *API) firmwareReleases(w http.ResponseWriter, r *http.Request) {
	fs, ok := a.firmwares(w)
	if !ok {
		return
	}
	rs, err := fleet.LoadReleaseSet(r.Context(), fs)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []imageJSON{}
	all, err := fs.ListFirmwareImages(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for _, im := range all {
		if _, ok := rs.Images[im.Name]; ok {
			out = append(out, imageJSON{Name: im.Name, Hardware: im.Hardware, Version: im.Version, KnownProblem: im.KnownProblem, Length: im.Length, SHA256: im.SHA256})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"targets_version": rs.TargetsVersion, "images": out})
}

func (a *API) listRollouts(w http.ResponseWriter, r *http.Request) {
	fs, ok := a.firmwares(w)
	if !ok {
		return
	}
	list, err := fs.ListFirmwareRollouts(r.Context(), r.PathValue("org"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]rolloutJSON, 0, len(list))
	for _, x := range list {
		out = append(out, rolloutOut(x))
	}
	writeJSON(w, http.StatusOK, map[string]any{"rollouts": out})
}

// rolloutIDRe is what newDirID("ro_") makes.
var rolloutIDRe = regexp.MustCompile(`^ro_[a-z0-9]{1,64}$`)

// rolloutOf reads the path's rollout, 404 for another organisation's.
func (a *API) rolloutOf(w http.ResponseWriter, r *http.Request, fs firmwareStore) (store.FirmwareRollout, bool) {
	id := r.PathValue("id")
	if !rolloutIDRe.MatchString(id) {
		a.bad(w, "id", "not a rollout id (ro_…)")
		return store.FirmwareRollout{}, false
	}
	x, err := fs.GetFirmwareRollout(r.Context(), id)
	if err == nil && x.OrgID != r.PathValue("org") {
		err = store.ErrNotFound
	}
	if err != nil {
		a.fail(w, r, err)
		return x, false
	}
	return x, true
}

type rolloutBody struct {
	Name          string   `json:"name"`
	Image         string   `json:"image"`
	Devices       []string `json:"devices"`
	Percent       *int     `json:"percent"`
	PauseFailures *int     `json:"pause_failures"`
	PausePercent  *int     `json:"pause_percent"`
}

// createRollout starts a staged rollout of an approved image to the
// organisation's devices (or the group named in devices) at a percentage.
func (a *API) createRollout(w http.ResponseWriter, r *http.Request) {
	fs, ok := a.firmwares(w)
	if !ok {
		return
	}
	org := r.PathValue("org")
	var b rolloutBody
	if field, msg, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, field, msg)
		return
	}
	if b.Image == "" {
		a.bad(w, "image", "required: the name of an approved image")
		return
	}
	if b.Percent == nil {
		a.bad(w, "percent", "required: 0 to 100")
		return
	}
	rs, err := fleet.LoadReleaseSet(r.Context(), fs)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	devs, err := a.dir.ListDevices(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	x, err := fleet.NewRollout(fleet.RolloutRequest{Name: b.Name, Image: b.Image, Devices: b.Devices, Percent: *b.Percent,
		PauseFailures: b.PauseFailures, PausePercent: b.PausePercent}, devs, rs)
	if err != nil {
		a.firmwareFail(w, r, err)
		return
	}
	x.ID, x.OrgID, x.CreatedBy = newDirID("ro_"), org, principalOf(r).Actor()
	x.CreatedAt = a.now().UTC()
	x.UpdatedAt = x.CreatedAt
	if !a.audited(w, r, org, "firmware.rollout_create", "rollout", x.ID, map[string]string{"image": x.Image,
		"percent": strconv.Itoa(x.Percent), "devices": strconv.Itoa(len(x.Devices))}) {
		return
	}
	if err := fs.CreateFirmwareRollout(r.Context(), x); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, rolloutOut(x))
}

type rolloutUpdate struct {
	Percent *int  `json:"percent"`
	Paused  *bool `json:"paused"`
}

// updateRollout raises a rollout's percentage, pauses or resumes it. The
// percentage only goes up (devices already updated stay updated); pause
// to stop it.
func (a *API) updateRollout(w http.ResponseWriter, r *http.Request) {
	fs, ok := a.firmwares(w)
	if !ok {
		return
	}
	var b rolloutUpdate
	if field, msg, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, field, msg)
		return
	}
	if b.Percent == nil && b.Paused == nil {
		a.bad(w, "", "give percent, paused or both")
		return
	}
	x, ok := a.rolloutOf(w, r, fs)
	if !ok {
		return
	}
	details := map[string]string{}
	if b.Percent != nil {
		switch {
		case *b.Percent < 0 || *b.Percent > 100:
			a.bad(w, "percent", "want 0 to 100")
			return
		case *b.Percent < x.Percent:
			a.bad(w, "percent", "can only be raised (now "+strconv.Itoa(x.Percent)+"); pause the rollout to stop it")
			return
		}
		x.Percent = *b.Percent
		details["percent"] = strconv.Itoa(x.Percent)
	}
	if b.Paused != nil {
		x.Paused = *b.Paused
		x.PausedReason = ""
		if x.Paused {
			x.PausedReason = "manual"
		}
		details["paused"] = strconv.FormatBool(x.Paused)
	}
	x.UpdatedAt = a.now().UTC()
	if !a.audited(w, r, x.OrgID, "firmware.rollout_update", "rollout", x.ID, details) {
		return
	}
	if err := fs.UpdateFirmwareRollout(r.Context(), x); err != nil {
		a.fail(w, r, err)
		return
	}
	got, err := fs.GetFirmwareRollout(r.Context(), x.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rolloutOut(got))
}

// firmwareCompliance is the fleet view: per device the running version,
// the director's target, whether it is behind, approved or on a version
// with a known problem, and when it last checked for updates
// (?stale_after=DURATION, default 7 days).
func (a *API) firmwareCompliance(w http.ResponseWriter, r *http.Request) {
	fs, ok := a.firmwares(w)
	if !ok {
		return
	}
	org := r.PathValue("org")
	stale := 7 * 24 * time.Hour
	if s := r.URL.Query().Get("stale_after"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Minute || d > 365*24*time.Hour {
			a.bad(w, "stale_after", "want a duration from 1m to 8760h, e.g. 24h")
			return
		}
		stale = d
	}
	rs, err := fleet.LoadReleaseSet(r.Context(), fs)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	devs, err := a.dir.ListDevices(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	sts, err := fs.ListFirmwareStatus(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rollouts, err := fs.ListFirmwareRollouts(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := fleet.Compliance(devs, sts, rollouts, rs, a.now(), stale)
	sum := map[string]int{"devices": len(out)}
	for _, c := range out {
		for k, on := range map[string]bool{"behind": c.Behind, "stale": c.Stale, "known_problem": c.Problem, "unapproved": !c.Approved} {
			if on {
				sum[k]++
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out, "summary": sum, "newest": rs.Newest()})
}

func (a *API) firmwareFail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *firmware.FieldError
	if errors.As(err, &fe) {
		a.bad(w, fe.Field, fe.Msg)
		return
	}
	a.fail(w, r, err)
}
