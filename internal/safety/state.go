package safety

import (
	"context"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"vigil/internal/deadline"
	"vigil/internal/event"
	"vigil/internal/store"
)

// The engine's in-memory state is sized for millions of active sessions
// (about 480 bytes per worker with a device and a session at 100k, 560 at
// 1M, the scheduler's two entries included; BenchmarkLoad100k/1M): devices and
// sessions are compact records in slabs, found by device id and by person
// (no map by session id), times are Unix nanoseconds, organisation ids
// are shared strings, a session has one deadline, and a session's note, a
// device's last position and other text are read from the store when an
// alert needs them (rare) rather than kept.

// nanos is an instant as Unix nanoseconds, 0 for the zero time.Time (an
// instant at exactly 1970-01-01 00:00 UTC counts as zero): 8 bytes and no
// pointer, against time.Time's 24 bytes with one.
type nanos int64

func nanosOf(t time.Time) nanos {
	if t.IsZero() {
		return 0
	}
	return nanos(t.UnixNano())
}

// Time returns n in UTC, or the zero time.Time for 0.
func (n nanos) Time() time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

// slab keeps records in fixed chunks that never move, so a *T stays valid
// for the engine's life, and finds a record from an int32 handle: what
// the scheduler's pointer-free timer keys hold. Released handles are
// reused; records that can be released carry a generation that their
// keys repeat, so a key of a released record matches nothing.
type slab[T any] struct {
	chunks [][]T
	n      int32 // handles handed out, released or not
	free   []int32
}

const slabChunk = 1024

func (s *slab[T]) alloc() (int32, *T) {
	if k := len(s.free); k > 0 {
		h := s.free[k-1]
		s.free = s.free[:k-1]
		return h, s.at(h)
	}
	h := s.n
	if int(h)/slabChunk == len(s.chunks) {
		s.chunks = append(s.chunks, make([]T, slabChunk))
	}
	s.n++
	return h, s.at(h)
}

func (s *slab[T]) at(h int32) *T { return &s.chunks[h/slabChunk][h%slabChunk] }

// valid reports whether h was handed out.
func (s *slab[T]) valid(h int32) bool { return h >= 0 && h < s.n }

func (s *slab[T]) release(h int32) { s.free = append(s.free, h) }

// strArena copies strings into shared 64 KiB chunks: the ids Load reads
// become a few hundred allocations instead of millions, which the garbage
// collector marks at a fraction of the cost, and they sit in the order
// they were read. A chunk lives while any of its strings does, so it is
// for what Load reads, not for the churn after. Bytes once appended are
// never written again, which is what unsafe.String needs.
type strArena struct{ buf []byte }

func (a *strArena) str(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > cap(a.buf)-len(a.buf) {
		a.buf = make([]byte, 0, max(64<<10, len(s)))
	}
	n := len(a.buf)
	a.buf = append(a.buf, s...)
	return unsafe.String(&a.buf[n], len(s))
}

// timerKind says what a deadline is for.
type timerKind uint8

const (
	// timerSession is a session's next due moment, whichever comes first
	// of its check-in reminder, missed check-in and overrun that is not
	// yet handled (see nextSessionDue): one deadline per session, not
	// three. h: session.
	timerSession  timerKind = iota + 1
	timerPending            // h: pending alert
	timerOffline            // h: device
	timerNoMotion           // h: device
)

// timerKey names a deadline without a pointer (12 bytes), so the
// scheduler's index is small and the garbage collector does not scan it.
type timerKey struct {
	kind timerKind
	h    int32  // handle of the device, session or pending alert
	gen  uint32 // the session's or alert's generation; devices are never released
}

// devInfo is what the engine keeps per device.
type devInfo struct {
	id, org, person string   // org is interned
	nextWorn        *devInfo // the next device of the same wearer
	h               int32
	battery         int32 // percent; -1 unknown
	resident        bool
	disabled        bool
	charging        bool
	// posRead: the stored last position was read (GetDevice) and merged
	// into pos, the newer of the two winning. Load does not read
	// positions (an alert needs one, and alerts are rare): until an alert
	// or a re-read merges it, pos holds only what events brought.
	posRead     bool
	readAt      nanos   // when the directory fields were read
	lastSeen    nanos   // newest device time seen
	lastMove    nanos   // end of the newest motion window with movement
	alertedMove nanos   // lastMove when no_motion was last raised
	pos         *devPos // nil: no position known
}

// devPos is a device's last position, kept apart from devInfo so that a
// device without one (every device right after Load) costs a pointer.
type devPos struct {
	lat, lon, acc float64
	fix           nanos // the fix time
	at            nanos // device time of the position
}

// setPos keeps p, taken at device time at, if it is newer than the
// position d has (or force).
func (d *devInfo) setPos(p event.Position, at nanos, force bool) {
	if d.pos != nil && at <= d.pos.at && !force {
		return
	}
	if d.pos == nil {
		d.pos = new(devPos)
	}
	*d.pos = devPos{lat: p.Lat, lon: p.Lon, acc: p.AccuracyM, fix: nanosOf(p.FixTime), at: at}
}

// mergeStored merges the store's record of the device's last position
// into d; the caller holds mu.
func (d *devInfo) mergeStored(sd store.Device) {
	if p := sd.State.LastPosition; p != nil {
		d.setPos(*p, nanosOf(sd.State.PositionTime), false)
	}
	d.posRead = true
}

func (d *devInfo) key(k timerKind) timerKey { return timerKey{kind: k, h: d.h} }

// sessInfo is what the engine keeps of an active session: its timing and
// whom it concerns. The rest (note, preset) is read from the store.
type sessInfo struct {
	id, org, person, device string // org is interned
	h                       int32
	gen                     uint32
	started, end, last      nanos // start, expected end, last check-in
	interval, grace         time.Duration
	// handled is the last of the session's due moments (reminder, missed
	// check-in, overrun) its timer handled; 0 once its timing changed.
	handled nanos
}

func (s *sessInfo) key(k timerKind) timerKey { return timerKey{kind: k, h: s.h, gen: s.gen} }

// timing is the session as SessionDeadlines needs it.
func (s *sessInfo) timing() store.Session {
	return store.Session{State: store.SessionActive, StartedAt: s.started.Time(), ExpectedEnd: s.end.Time(),
		CheckinInterval: s.interval, Grace: s.grace, LastCheckin: s.last.Time()}
}

// person links a person to their active session and their devices.
type person struct {
	sess *sessInfo
	devs *devInfo // first of the list through devInfo.nextWorn
}

// pendingAlert is a pre-alert waiting for its deadline.
type pendingAlert struct {
	id  string
	gen uint32
}

// intern returns the shared copy of an organisation id; the caller holds
// mu.
func (e *Engine) intern(org string) string {
	if s, ok := e.orgs[org]; ok {
		return s
	}
	e.orgs[org] = org
	return org
}

// putDevice records what the store says of a device, keeping what the
// engine saw since if it is newer; the caller holds mu (or owns the
// engine).
func (e *Engine) putDevice(w store.DeviceWatch, resident bool, now nanos) *devInfo {
	d := e.devices[w.ID]
	if d == nil {
		var h int32
		h, d = e.devs.alloc()
		*d = devInfo{id: w.ID, h: h, battery: -1}
		e.devices[d.id] = d
	}
	if d.person != w.PersonID {
		e.unwear(d)
		d.person = w.PersonID
		e.wear(d)
	}
	e.setDevice(d, w, resident, now)
	return d
}

// setDevice is putDevice once d is indexed.
func (e *Engine) setDevice(d *devInfo, w store.DeviceWatch, resident bool, now nanos) {
	d.org = e.intern(w.OrgID)
	d.resident, d.disabled, d.readAt = resident, w.Disabled, now
	if t := nanosOf(w.LastSeen); t > d.lastSeen {
		d.lastSeen = t
	}
	if w.Battery >= 0 && d.battery < 0 {
		d.battery, d.charging = int32(w.Battery), w.Charging
	}
}

// wear adds d to its person's devices; unwear removes it.
func (e *Engine) wear(d *devInfo) {
	if d.person == "" {
		return
	}
	p := e.people[d.person]
	d.nextWorn, p.devs = p.devs, d
	e.people[d.person] = p
}

func (e *Engine) unwear(d *devInfo) {
	if d.person == "" {
		return
	}
	p, ok := e.people[d.person]
	if !ok {
		return
	}
	for at := &p.devs; *at != nil; at = &(*at).nextWorn {
		if *at == d {
			*at = d.nextWorn
			break
		}
	}
	d.nextWorn = nil
	e.setPerson(d.person, p)
}

// setPerson stores p, or drops it once it has neither a session nor a
// device.
func (e *Engine) setPerson(id string, p person) {
	if p.sess == nil && p.devs == nil {
		delete(e.people, id)
		return
	}
	e.people[id] = p
}

// worn returns the devices a person wears.
func (e *Engine) worn(personID string) []*devInfo {
	var out []*devInfo
	for d := e.people[personID].devs; d != nil; d = d.nextWorn {
		out = append(out, d)
	}
	return out
}

// newSession records an active session without linking it to its
// person (see link); the caller holds mu (or owns the engine).
// Sessions are found through their person (a session's person never
// changes, and every caller knows it): no map by session id.
func (e *Engine) newSession(x store.SessionTimer) *sessInfo {
	s := e.people[x.PersonID].sess
	if s == nil || s.id != x.ID {
		var h int32
		h, s = e.sess.alloc()
		gen := s.gen
		*s = sessInfo{id: x.ID, h: h, gen: gen}
	}
	setSession(s, x)
	return s
}

// session returns the active session id of personID, or nil; the caller
// holds mu.
func (e *Engine) session(id, personID string) *sessInfo {
	if s := e.people[personID].sess; s != nil && s.id == id {
		return s
	}
	return nil
}

func setSession(s *sessInfo, x store.SessionTimer) {
	s.org, s.person, s.device = x.OrgID, x.PersonID, x.DeviceID
	s.started, s.end, s.last = nanosOf(x.StartedAt), nanosOf(x.ExpectedEnd), nanosOf(x.LastCheckin)
	s.interval, s.grace = x.CheckinInterval, x.Grace
}

// link makes s its person's active session and shares strings with the
// person's devices; the caller holds mu. It returns the person. With own,
// the person and device ids that no device shares are copied into it
// (Load reads them into a scratch arena it then lets go).
func (e *Engine) link(s *sessInfo, own *strArena) person {
	s.org = e.intern(s.org)
	p := e.people[s.person]
	if p.devs != nil {
		s.person = p.devs.person
	} else if own != nil {
		s.person = own.str(s.person)
	}
	if old := p.sess; old != nil && old != s {
		e.dropSession(old)
		p = e.people[s.person]
	}
	p.sess = s
	e.people[s.person] = p
	shared := false
	for d := p.devs; d != nil; d = d.nextWorn {
		if d.id == s.device {
			s.device, shared = d.id, true
		}
	}
	if !shared && own != nil {
		s.device = own.str(s.device)
	}
	return p
}

// putSession records an active session as the store returned it; the
// caller holds mu.
func (e *Engine) putSession(x store.Session) *sessInfo {
	s := e.newSession(store.SessionTimer{ID: x.ID, OrgID: x.OrgID, PersonID: x.PersonID, DeviceID: x.DeviceID,
		StartedAt: x.StartedAt, ExpectedEnd: x.ExpectedEnd, CheckinInterval: x.CheckinInterval, Grace: x.Grace, LastCheckin: x.LastCheckin})
	e.link(s, nil)
	return s
}

// dropSession forgets an ended session and its deadlines; the caller
// holds mu.
func (e *Engine) dropSession(s *sessInfo) {
	e.unschedule(s)
	if p, ok := e.people[s.person]; ok && p.sess == s {
		p.sess = nil
		e.setPerson(s.person, p)
	}
	h, gen := s.h, s.gen+1
	*s = sessInfo{h: h, gen: gen}
	e.sess.release(h)
}

// sessionOf returns the session a timer key names, or nil if it ended.
func (e *Engine) sessionOf(k timerKey) *sessInfo {
	if !e.sess.valid(k.h) {
		return nil
	}
	if s := e.sess.at(k.h); s.gen == k.gen && s.id != "" {
		return s
	}
	return nil
}

// deviceOf returns the device a timer key names.
func (e *Engine) deviceOf(k timerKey) *devInfo {
	if !e.devs.valid(k.h) {
		return nil
	}
	return e.devs.at(k.h)
}

// pendingKey returns the timer key of a pending alert, making one if
// needed; the caller holds mu.
func (e *Engine) pendingKey(alertID string) timerKey {
	if h, ok := e.pendingIDs[alertID]; ok {
		return timerKey{kind: timerPending, h: h, gen: e.pending.at(h).gen}
	}
	h, p := e.pending.alloc()
	p.id = alertID
	e.pendingIDs[alertID] = h
	return timerKey{kind: timerPending, h: h, gen: p.gen}
}

// pendingOf returns the alert id of a pending alert's key, or "" if it
// was released.
func (e *Engine) pendingOf(k timerKey) string {
	if !e.pending.valid(k.h) {
		return ""
	}
	if p := e.pending.at(k.h); p.gen == k.gen {
		return p.id
	}
	return ""
}

// releasePending cancels a pending alert's deadline and forgets its key;
// the caller holds mu.
func (e *Engine) releasePending(alertID string) {
	h, ok := e.pendingIDs[alertID]
	if !ok {
		return
	}
	p := e.pending.at(h)
	e.sch.Cancel(timerKey{kind: timerPending, h: h, gen: p.gen})
	delete(e.pendingIDs, alertID)
	*p = pendingAlert{gen: p.gen + 1}
	e.pending.release(h)
}

// Load rebuilds the engine's state from the store: devices, active
// sessions and their deadlines, pending pre-alerts, geofences, and
// offline watches. Call it before Run and before feeding events.
//
// Devices and sessions are read at the same time on two connections
// (EachDeviceWatch, EachSessionTimer: only the columns kept; not the
// devices' positions, which an alert reads when it needs one), each into
// its own slab, their ids into string arenas; into an empty engine (a
// start) the maps are then made at their final size and filled, with
// no rehashing, and sessions linked by person on this goroutine, each
// with one deadline (its next due moment) and, for a worker in a
// session, an offline watch per device.
func (e *Engine) Load(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clk.Now()
	orgs, err := e.st.ListOrgs(ctx)
	if err != nil {
		return fmt.Errorf("load safety state: %w", err)
	}
	ids, err := e.st.ResidentIDs(ctx)
	if err != nil {
		return fmt.Errorf("load safety state: %w", err)
	}
	residents := make(map[string]bool, len(ids))
	for _, id := range ids {
		residents[id] = true
	}
	for _, o := range orgs {
		of, _, err := e.readFences(ctx, o.ID, "")
		if err != nil {
			return fmt.Errorf("load safety state: %w", err)
		}
		e.installFences(o.ID, of)
		e.intern(o.ID)
	}

	fresh := len(e.devices) == 0 && len(e.people) == 0
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var sessErr error
	var later []store.SessionTimer // sessions into a non-empty engine
	// Session ids are kept in sessIDs; their person and device ids go to
	// scratch, and link keeps a copy only of those no device shares.
	var sessIDs, scratch strArena
	wg.Add(1)
	go func() { // owns e.sess until Wait
		defer wg.Done()
		sessErr = e.st.EachSessionTimer(rctx, func(x store.SessionTimer) error {
			if !fresh {
				later = append(later, x)
				return nil
			}
			h, s := e.sess.alloc()
			x.ID, x.PersonID, x.DeviceID = sessIDs.str(x.ID), scratch.str(x.PersonID), scratch.str(x.DeviceID)
			*s = sessInfo{id: x.ID, h: h}
			setSession(s, x)
			return nil
		})
		if sessErr != nil {
			cancel()
		}
	}()
	devs := 0
	readAt := nanosOf(now)
	var devIDs strArena
	devErr := e.st.EachDeviceWatch(rctx, func(w store.DeviceWatch) error {
		devs++
		if !fresh {
			e.putDevice(w, residents[w.PersonID], readAt)
			return nil
		}
		h, d := e.devs.alloc()
		*d = devInfo{id: devIDs.str(w.ID), person: devIDs.str(w.PersonID), h: h, battery: -1}
		e.setDevice(d, w, residents[w.PersonID], readAt)
		return nil
	})
	if devErr != nil {
		cancel()
	}
	wg.Wait()
	if devErr != nil {
		return fmt.Errorf("load safety state: %w", devErr)
	}
	if sessErr != nil {
		return fmt.Errorf("load safety state: %w", sessErr)
	}
	own := &sessIDs
	if fresh {
		e.devices = make(map[string]*devInfo, e.devs.n)
		e.people = make(map[string]person, max(e.devs.n, e.sess.n))
		for h := range e.devs.n {
			d := e.devs.at(h)
			e.devices[d.id] = d
			e.wear(d)
		}
	} else {
		own = nil
		for _, x := range later {
			e.newSession(x)
		}
	}

	var pending []store.Alert
	for before := (time.Time{}); ; {
		page, err := e.st.ListAlerts(ctx, store.AlertFilter{States: []store.AlertState{store.AlertPending}, RaisedBefore: before, Limit: 1000})
		if err != nil {
			return fmt.Errorf("load safety state: %w", err)
		}
		pending = append(pending, page...)
		if len(page) < 1000 {
			break
		}
		// Pages by raise time (pre-alerts are raised one at a time, so
		// two sharing a nanosecond across a page boundary is not a case).
		before = page[len(page)-1].RaisedAt
	}

	// One pass over the sessions links each to its person and schedules
	// it and the person's devices (a worker's devices are watched only
	// during a session); residents' devices are always watched. Few map
	// look-ups per record: at a million, each is a cache miss.
	items := make([]deadline.Item[timerKey], 0, e.sess.n+int32(devs)+int32(len(pending)))
	offline := func(d *devInfo) {
		if at, ok := e.offlineDeadline(d); ok {
			items = append(items, deadline.Item[timerKey]{Key: d.key(timerOffline), At: at})
		}
	}
	sessions := 0
	for h := range e.sess.n {
		s := e.sess.at(h)
		if s.id == "" {
			continue
		}
		sessions++
		p := e.link(s, own)
		items = e.sessionItem(items, s)
		for d := p.devs; d != nil; d = d.nextWorn {
			if !d.resident {
				offline(d)
			}
		}
	}
	for h := range e.devs.n {
		if d := e.devs.at(h); d.resident {
			offline(d)
		}
	}
	for _, a := range pending {
		items = append(items, deadline.Item[timerKey]{Key: e.pendingKey(a.ID), At: a.PendingUntil})
	}
	e.sch.Load(items)
	e.log.Info("safety engine loaded", "sessions", sessions, "devices", devs, "pending_alerts", len(pending), "timers", e.sch.Len())
	return nil
}
