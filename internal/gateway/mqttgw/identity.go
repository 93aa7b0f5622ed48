package mqttgw

import (
	"net"
	"slices"
	"sync"
	"time"
)

// Shared-identity policies: what happens to a connection for a device
// whose identity is being used from more than one place (security
// requirement 6).
const (
	// SharedTakeover lets the newest connection replace the old one (the
	// MQTT session takeover), after the event is raised. The default: a
	// phone that changes network must never be locked out by its own
	// half-open connection.
	SharedTakeover = "takeover"
	// SharedRefuse keeps a flagged identity's live connection and refuses
	// new ones from another source (CONNACK 0x87) until the window passes.
	SharedRefuse = "refuse"
)

// sharedWindow is how far back connection sources are compared; an event
// per device is raised at most once per sharedQuiet.
const (
	sharedWindow = 60 * time.Second
	sharedQuiet  = 10 * time.Minute
)

// SharedIdentity is told once per device and quiet period when one
// identity connects from several places (the app writes it to the audit
// log as a security event).
type SharedIdentity interface {
	DeviceIdentityShared(deviceID, orgID string, sources []string, at time.Time)
}

// identityWatch notices one device identity used from two places: within
// sharedWindow its connections came from at least two sources and the
// source changed at least twice (A→B→A: two holders taking the session
// from each other). A single network change (A→B) is normal for a phone,
// even while its old connection still looks live, and is not flagged.
type identityWatch struct {
	mu      sync.Mutex
	recent  map[string][]connSource // device id → connections in the window, oldest first
	flagged map[string]time.Time    // device id → when its event was raised
}

type connSource struct {
	ip string
	at time.Time
}

func newIdentityWatch() *identityWatch {
	return &identityWatch{recent: map[string][]connSource{}, flagged: map[string]time.Time{}}
}

// sourceIP is the host part of a remote address.
func sourceIP(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// connect records an authenticated connection of deviceID from ip at now.
// It reports whether the identity is shared now (flagged within the last
// sharedWindow) and, if this is the first report in the quiet period, the
// distinct sources to raise the event with (raise non-nil).
func (w *identityWatch) connect(deviceID, ip string, now time.Time) (shared bool, raise []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.recent[deviceID]
	cut := 0
	for cut < len(list) && now.Sub(list[cut].at) > sharedWindow {
		cut++
	}
	list = append(list[cut:], connSource{ip: ip, at: now})
	if len(list) > 64 {
		list = list[len(list)-64:]
	}
	w.recent[deviceID] = list
	changes := 0
	var sources []string
	for i, c := range list {
		if i > 0 && c.ip != list[i-1].ip {
			changes++
		}
		if !slices.Contains(sources, c.ip) {
			sources = append(sources, c.ip)
		}
	}
	shared = len(sources) > 1 && changes >= 2
	if at, ok := w.flagged[deviceID]; ok && now.Sub(at) < sharedQuiet {
		return shared || now.Sub(at) < sharedWindow, nil
	}
	if !shared {
		return false, nil
	}
	w.flagged[deviceID] = now
	slices.Sort(sources)
	return true, sources
}

// prune forgets devices with nothing in the window and old flags.
func (w *identityWatch) prune(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, list := range w.recent {
		if len(list) == 0 || now.Sub(list[len(list)-1].at) > sharedWindow {
			delete(w.recent, id)
		}
	}
	for id, at := range w.flagged {
		if now.Sub(at) > sharedQuiet {
			delete(w.flagged, id)
		}
	}
}
