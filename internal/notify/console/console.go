// Package console is the console's live feed: a Hub that fans alert events
// out, per organisation, to connected browsers over server-sent events, and
// a notify.Notifier (channel "console", Target.Address = the organisation's
// id) that publishes into it.
//
// The alarm path never waits for a browser. Publish takes the hub's lock,
// appends the event to the organisation's replay ring and offers it to each
// subscriber's small buffered channel without blocking: a subscriber whose
// buffer is full is disconnected (its browser reconnects with Last-Event-ID
// and gets the missed events from the ring) and counted in Dropped.
//
// Event ids are "<epoch>-<seq>": seq increases by one per event across the
// hub, epoch is random per Hub, so a browser reconnecting to a restarted
// process (or asking for more than the ring still holds) is told to
// "resync" (reload its state from the API) instead of silently missing
// events. Channel health (Degraded) is broadcast to every organisation and
// repeated to each new subscriber.
//
// The hub starts no goroutine: each SSE stream runs on its HTTP request's
// goroutine and ends on client disconnect, when it is too slow, or on
// Close. Which organisation a request may watch is decided by the caller's
// function (authentication), never by the request's query string.
//
// Event data carries personal data (names, notes, positions) for the
// console only: never in logs or errors. It must not import the store, the
// bus, the safety engine or the app.
package console

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for Config.
const (
	DefaultBuffer         = 16
	DefaultReplay         = 256
	DefaultMaxSubscribers = 200
	DefaultHeartbeat      = 15 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultRetry          = 3 * time.Second
	maxDataBytes          = 64 << 10
)

// Config tunes a Hub; the zero value uses the defaults.
type Config struct {
	Buffer         int           // events queued per subscriber before it is dropped
	Replay         int           // events kept per organisation for Last-Event-ID
	MaxSubscribers int           // concurrent streams per organisation
	Heartbeat      time.Duration // comment line on an idle stream
	WriteTimeout   time.Duration // a write to one browser may take this long
	Retry          time.Duration // reconnect delay suggested to browsers
}

func (c Config) withDefaults() Config {
	if c.Buffer <= 0 {
		c.Buffer = DefaultBuffer
	}
	if c.Replay <= 0 {
		c.Replay = DefaultReplay
	}
	if c.MaxSubscribers <= 0 {
		c.MaxSubscribers = DefaultMaxSubscribers
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Retry <= 0 {
		c.Retry = DefaultRetry
	}
	return c
}

// Errors.
var (
	ErrClosed  = errors.New("console: hub closed")
	ErrSlow    = errors.New("console: subscriber too slow")
	ErrTooMany = errors.New("console: too many subscribers")
	ErrInvalid = errors.New("console: invalid event")
)

// Event names the hub itself sends.
const (
	EventChannel = "channel" // a notification channel's health: {"channel":"sms","degraded":true}
	EventResync  = "resync"  // events were missed: reload the state from the API
)

// Event is one server-sent event.
type Event struct {
	// ID is "<epoch>-<seq>", or "" for a state event that is not replayed
	// (resync, the current channel health on connect).
	ID   string
	Name string
	Data []byte // one line of JSON
	seq  uint64
}

// Hub fans events out per organisation. It is safe for concurrent use.
type Hub struct {
	cfg   Config
	log   *slog.Logger
	epoch string

	mu       sync.Mutex
	closed   bool
	seq      uint64
	orgs     map[string]*feed
	degraded map[string]bool // channel → degraded
	dropped  uint64
	subs     int
}

// feed is one organisation's ring and subscribers.
type feed struct {
	ring  []Event // circular, at most cfg.Replay; the oldest at start
	start int
	lost  uint64 // seq of the newest event evicted from ring
	subs  map[*Subscription]struct{}
}

// push adds ev to the ring, evicting the oldest when it is full.
func (f *feed) push(ev Event, size int) {
	if len(f.ring) < size {
		f.ring = append(f.ring, ev)
		return
	}
	f.lost = f.ring[f.start].seq
	f.ring[f.start] = ev
	f.start = (f.start + 1) % len(f.ring)
}

// after returns the ring's events with seq > seq, oldest first.
func (f *feed) after(seq uint64) []Event {
	ordered := append(slices.Clone(f.ring[f.start:]), f.ring[:f.start]...)
	i, _ := slices.BinarySearchFunc(ordered, seq+1, func(e Event, t uint64) int {
		return cmp.Compare(e.seq, t)
	})
	return ordered[i:]
}

// NewHub returns an open hub; log may be nil.
func NewHub(cfg Config, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return &Hub{
		cfg:      cfg.withDefaults(),
		log:      log,
		epoch:    hex.EncodeToString(b[:]),
		orgs:     make(map[string]*feed),
		degraded: make(map[string]bool),
	}
}

// Publish appends an event to org's feed and offers it to org's
// subscribers; it never blocks on a subscriber. data must be one line.
// It returns the event's id.
func (h *Hub) Publish(org, name string, data []byte) (string, error) {
	if err := validate(org, name, data); err != nil {
		return "", fmt.Errorf("console: publish: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return "", fmt.Errorf("console: publish: %w", ErrClosed)
	}
	ev := h.nextLocked(name, data)
	h.deliverLocked(h.feedLocked(org), ev)
	return ev.ID, nil
}

// Degraded records whether a notification channel ("sms", "email", …) is
// failing and, when that changes, tells every organisation's console.
func (h *Hub) Degraded(channel string, degraded bool) {
	if !isToken(channel) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.degraded[channel] == degraded {
		return
	}
	if degraded {
		h.degraded[channel] = true
	} else {
		delete(h.degraded, channel)
	}
	ev := h.nextLocked(EventChannel, channelData(channel, degraded))
	for _, f := range h.orgs {
		h.deliverLocked(f, ev)
	}
}

func channelData(channel string, degraded bool) []byte {
	return []byte(`{"channel":"` + channel + `","degraded":` + strconv.FormatBool(degraded) + `}`)
}

func (h *Hub) nextLocked(name string, data []byte) Event {
	h.seq++
	return Event{ID: h.epoch + "-" + strconv.FormatUint(h.seq, 10), Name: name, Data: slices.Clone(data), seq: h.seq}
}

func (h *Hub) feedLocked(org string) *feed {
	f := h.orgs[org]
	if f == nil {
		f = &feed{subs: make(map[*Subscription]struct{})}
		h.orgs[org] = f
	}
	return f
}

func (h *Hub) deliverLocked(f *feed, ev Event) {
	f.push(ev, h.cfg.Replay)
	for s := range f.subs {
		select {
		case s.ch <- ev:
		default:
			h.dropped++
			h.removeLocked(f, s, ErrSlow)
		}
	}
}

func (h *Hub) removeLocked(f *feed, s *Subscription, reason error) {
	if _, ok := f.subs[s]; !ok {
		return
	}
	delete(f.subs, s)
	h.subs--
	s.err = reason
	close(s.done)
}

// Subscribe starts a subscription to org's events. lastEventID is the
// browser's Last-Event-ID ("" for a fresh connection): the subscription's
// Backlog holds the events after it that the ring still has, preceded by a
// resync event if some are gone, and followed by the current health of any
// degraded channel.
func (h *Hub) Subscribe(org, lastEventID string) (*Subscription, error) {
	if org == "" {
		return nil, fmt.Errorf("console: subscribe: %w", ErrInvalid)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("console: subscribe: %w", ErrClosed)
	}
	f := h.feedLocked(org)
	if len(f.subs) >= h.cfg.MaxSubscribers {
		return nil, fmt.Errorf("console: subscribe: %w", ErrTooMany)
	}
	s := &Subscription{hub: h, org: org, ch: make(chan Event, h.cfg.Buffer), done: make(chan struct{})}
	if lastEventID != "" {
		epoch, seq, ok := parseEventID(lastEventID)
		if !ok || epoch != h.epoch || seq < f.lost {
			s.backlog = append(s.backlog, Event{Name: EventResync, Data: []byte(`{"reason":"missed events"}`)})
			seq = 0
		}
		s.backlog = append(s.backlog, f.after(seq)...)
	}
	for _, ch := range slices.Sorted(maps.Keys(h.degraded)) {
		s.backlog = append(s.backlog, Event{Name: EventChannel, Data: channelData(ch, true)})
	}
	f.subs[s] = struct{}{}
	h.subs++
	return s, nil
}

// parseEventID splits "<epoch>-<seq>". It reads outside bytes (the
// Last-Event-ID header): anything malformed is !ok.
func parseEventID(id string) (epoch string, seq uint64, ok bool) {
	if len(id) > 64 {
		return "", 0, false
	}
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil || seq == 0 {
		return "", 0, false
	}
	return id[:i], seq, true
}

// Close disconnects every subscriber and refuses new events and
// subscriptions. It is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for _, f := range h.orgs {
		for s := range f.subs {
			h.removeLocked(f, s, ErrClosed)
		}
	}
}

// Dropped returns how many subscribers were disconnected because their
// buffer was full (a counter for metrics).
func (h *Hub) Dropped() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

// Subscribers returns how many subscriptions are live (a gauge).
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.subs
}

// Subscription is one subscriber's view of an organisation's feed.
type Subscription struct {
	hub     *Hub
	org     string
	backlog []Event
	ch      chan Event
	done    chan struct{}
	err     error // guarded by hub.mu; set before done is closed
}

// Backlog returns the events to send before those from Events: replayed
// events and the current channel health.
func (s *Subscription) Backlog() []Event { return s.backlog }

// Events delivers live events. It is never closed: watch Done.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Done is closed when the subscription ends: Close, too slow, or the hub
// closed.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why Done was closed: ErrSlow, ErrClosed, or nil after Close (or
// while live).
func (s *Subscription) Err() error {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.err
}

// Close ends the subscription; it is idempotent.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if f := s.hub.orgs[s.org]; f != nil {
		s.hub.removeLocked(f, s, nil)
	}
}

func validate(org, name string, data []byte) error {
	switch {
	case org == "":
		return fmt.Errorf("empty organisation: %w", ErrInvalid)
	case !isToken(name):
		return fmt.Errorf("event name: %w", ErrInvalid)
	case len(data) > maxDataBytes:
		return fmt.Errorf("data over %d bytes: %w", maxDataBytes, ErrInvalid)
	case slices.Contains(data, '\n') || slices.Contains(data, '\r'):
		return fmt.Errorf("data is not one line: %w", ErrInvalid)
	}
	return nil
}

// isToken: 1–64 of [a-z0-9_.-], safe on an SSE "event:" line and in JSON.
func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
