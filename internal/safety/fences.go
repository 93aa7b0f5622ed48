package safety

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"

	"vigil/internal/alert"
	"vigil/internal/event"
	"vigil/internal/geofence"
	"vigil/internal/store"
)

// orgFences is one organisation's geofences, ready for evaluation.
type orgFences struct {
	stay []*geofence.Fence // must_stay_inside for everyone: evaluated for every fix
	// stayFor holds the must_stay_inside fences assigned to named people.
	stayFor map[string][]*geofence.Fence
	index   *geofence.Index            // must_not_enter: found through the R-tree
	byID    map[string]*geofence.Fence // every fence
	// version identifies the stored fences this was built from.
	version string
}

// fences holds every organisation's fences and each device's state
// against them (in memory: after a restart the first fixes establish the
// side again, with the dwell time).
type fences struct {
	byOrg map[string]*orgFences
	state map[string]map[string]geofence.State // device → fence id → state
}

func newFences() *fences {
	return &fences{byOrg: make(map[string]*orgFences), state: make(map[string]map[string]geofence.State)}
}

// FencesOf parses stored zones into fences, each with its stored id.
func FencesOf(recs []store.GeofenceRecord) ([]geofence.Fence, error) {
	var out []geofence.Fence
	for _, g := range recs {
		fs, err := geofence.ParseGeoJSON(g.Feature)
		if err != nil {
			return nil, fmt.Errorf("stored zone %s: %w", g.ID, err)
		}
		for _, f := range fs {
			f.ID = g.ID
			out = append(out, f)
		}
	}
	return out, nil
}

// readFences reads and parses an organisation's fences, unless their
// stored versions (ids and update times) are those already installed
// (changed false). It takes no lock: parsing 10k fences takes half a
// second, which must not stop event handling.
func (e *Engine) readFences(ctx context.Context, orgID string, have string) (of *orgFences, changed bool, err error) {
	recs, err := e.st.ListGeofences(ctx, orgID)
	if err != nil {
		return nil, false, err
	}
	h := fnv.New64a()
	for _, g := range recs {
		fmt.Fprintf(h, "%s\x00%d\x00", g.ID, g.UpdatedAt.UnixNano())
	}
	version := strconv.FormatUint(h.Sum64(), 36) + ":" + strconv.Itoa(len(recs))
	if version == have {
		return nil, false, nil
	}
	all, err := FencesOf(recs)
	if err != nil {
		return nil, false, err
	}
	of = &orgFences{byID: make(map[string]*geofence.Fence, len(all)), stayFor: make(map[string][]*geofence.Fence), version: version}
	var notEnter []geofence.Fence
	for i := range all {
		f := &all[i]
		of.byID[f.ID] = f
		switch {
		case f.Rule == geofence.MustStayInside && len(f.Assign) == 0:
			of.stay = append(of.stay, f)
		case f.Rule == geofence.MustStayInside:
			for _, p := range f.Assign {
				of.stayFor[p] = append(of.stayFor[p], f)
			}
		default:
			notEnter = append(notEnter, *f)
		}
	}
	if of.index, err = geofence.NewIndex(notEnter); err != nil {
		return nil, false, err
	}
	return of, true, nil
}

// installFences makes of an organisation's fences; the caller holds mu.
func (e *Engine) installFences(orgID string, of *orgFences) {
	e.fenc.byOrg[orgID] = of
	// Forget states of fences that are gone.
	for dev, m := range e.fenc.state {
		for id := range m {
			if d := e.devices[dev]; d != nil && d.org == orgID && of.byID[id] == nil {
				delete(m, id)
			}
		}
	}
}

// fenceVersion is the version of an organisation's installed fences; the
// caller holds mu.
func (e *Engine) fenceVersion(orgID string) string {
	if of := e.fenc.byOrg[orgID]; of != nil {
		return of.version
	}
	return ""
}

// ReloadFences re-reads an organisation's fences after they changed.
func (e *Engine) ReloadFences(ctx context.Context, orgID string) error {
	e.mu.Lock()
	have := e.fenceVersion(orgID)
	e.mu.Unlock()
	of, changed, err := e.readFences(ctx, orgID, have)
	if err != nil {
		return fmt.Errorf("reload fences of %s: %w", orgID, err)
	}
	if changed {
		e.mu.Lock()
		e.installFences(orgID, of)
		e.mu.Unlock()
	}
	return nil
}

// checkFences evaluates a position against the fences that apply to the
// device's person, while they are monitored (on duty, or a resident); the
// caller holds mu.
func (e *Engine) checkFences(ctx context.Context, d *devInfo, ev *event.Event) error {
	of := e.fenc.byOrg[d.org]
	if of == nil || len(of.byID) == 0 || !e.monitored(d) {
		return nil
	}
	fix := geofence.Fix{Lat: ev.Position.Lat, Lon: ev.Position.Lon, AccuracyM: ev.Position.AccuracyM}
	states := e.fenc.state[d.id]
	if states == nil {
		states = make(map[string]geofence.State)
		e.fenc.state[d.id] = states
	}
	var firstErr error
	eval := func(f *geofence.Fence, side geofence.Side) {
		if len(f.Assign) > 0 && !slices.Contains(f.Assign, d.person) {
			return
		}
		next, tr := geofence.Step(states[f.ID], side, ev.DeviceTime, f.Dwell)
		if tr == geofence.NoTransition || !f.Rule.Violated(next.Side) || !f.ActiveAt(ev.DeviceTime) {
			states[f.ID] = next
			return
		}
		kind, what := alert.KindGeofenceExit, "outside zone "
		if f.Rule == geofence.MustNotEnter {
			kind, what = alert.KindGeofenceEnter, "inside zone "
		}
		err := e.raise(ctx, alertSpec{kind: kind, dedup: "geofence:" + f.ID + ":" + d.id, cause: eventCause(ev) + ":" + f.ID,
			causeTime: ev.DeviceTime, session: e.activeSession(d.person), person: d.person, org: d.org, device: d, ev: ev,
			actor: "engine", detail: what + f.Name})
		if err != nil {
			// Keep the old state: the redelivered fix decides again.
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		states[f.ID] = next
	}
	for _, f := range of.stay {
		eval(f, f.Relate(fix))
	}
	for _, f := range of.stayFor[d.person] {
		eval(f, f.Relate(fix))
	}
	visited := make(map[string]bool)
	of.index.Search(fix, func(f *geofence.Fence) bool {
		visited[f.ID] = true
		eval(of.byID[f.ID], f.Relate(fix))
		return true
	})
	// A must_not_enter fence the search did not visit is certainly
	// outside: step it so a stale pending crossing cannot be confirmed.
	for id := range states {
		if f := of.byID[id]; f != nil && f.Rule == geofence.MustNotEnter && !visited[id] {
			eval(f, geofence.Outside)
		}
	}
	return firstErr
}
