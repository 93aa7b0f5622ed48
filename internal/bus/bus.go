// Package bus is Vigil's event backbone on NATS JetStream: an embedded server
// (the default: in-process connection, no TCP listener unless asked) or an
// external NATS cluster, the EVENTS stream, durable publish, and batched
// consumption.
//
// A publish returns only after JetStream has stored the message (PubAck), so
// a gateway may acknowledge its device when Publish returns nil. Whether that
// store has reached the disk depends on the sync setting (see Config.Sync and
// docs/operations.md): the default survives kill -9, "always" also survives
// power failure.
//
// Only internal/app imports this package. It must not import store, gateways
// or domain packages; it knows events only as bytes plus a subject.
package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamEvents is the stream holding every device event.
const StreamEvents = "EVENTS"

// SubjectPrefix prefixes every event subject.
const SubjectPrefix = "vigil.events."

// PartitionSubject is the subject of partition k: vigil.events.p<k>.
func PartitionSubject(k int) string {
	return SubjectPrefix + "p" + strconv.Itoa(k)
}

// MotionSubject is the subject of partition k's motion windows:
// vigil.events.motion.p<k>. They are in the same stream as the other
// events (the projector stores them too) but on their own subjects, so
// that the fall detector's consumer reads only them.
func MotionSubject(k int) string {
	return MotionFilter[:len(MotionFilter)-1] + "p" + strconv.Itoa(k)
}

// UrgentSubject is the subject of partition k's urgent events (buttons,
// falls, alarms): vigil.events.urgent.p<k>. The safety engine reads them on
// their own consumer, so an SOS never waits behind a backlog of position
// reports.
func UrgentSubject(k int) string {
	return UrgentFilter[:len(UrgentFilter)-1] + "p" + strconv.Itoa(k)
}

// EventsFilter selects every partition subject except motion windows and
// urgent events.
const EventsFilter = SubjectPrefix + "*"

// UrgentFilter selects every urgent subject.
const UrgentFilter = SubjectPrefix + "urgent.>"

// MotionFilter selects every motion subject.
const MotionFilter = SubjectPrefix + "motion.>"

// Config configures the bus. The zero value runs an embedded server with no
// listener in a temporary directory, which is only useful in tests.
type Config struct {
	// URL of an external NATS server or cluster; "" runs the embedded server.
	URL string
	// CredsFile is a NATS credentials file for the external server.
	CredsFile string
	// Dir is where the embedded server keeps JetStream data.
	Dir string
	// Listen is the embedded server's client listener ("host:port", port
	// -1 for random); "" means no listener: in-process connections only.
	Listen string
	// Sync is JetStream's fsync policy for the embedded server: "" or
	// "default" (JetStream's background sync every 2 minutes), "always"
	// (fsync every write before PubAck), or a Go duration.
	Sync string
	// Replicas of the EVENTS stream (1 for one machine, 3 on a cluster).
	Replicas int
	// MaxAge bounds how long events stay in the stream; the store keeps
	// the projection. Default 7 days.
	MaxAge time.Duration
	// StoreKey, when set, encrypts the embedded server's JetStream files
	// at rest (AES-256-GCM; nats-server converts plaintext blocks on
	// start). It is secret: derived from the key-encryption key
	// (datakey.Keyring.DeriveKey), never logged or written to disk.
	StoreKey []byte
}

// Bus is a connection to JetStream, owning the embedded server if any.
type Bus struct {
	cfg    Config
	log    *slog.Logger
	ns     *server.Server
	nc     *nats.Conn
	closed chan struct{}
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Open starts the embedded server (or connects to the external one) and
// makes sure the EVENTS stream exists with the expected configuration.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Bus, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 7 * 24 * time.Hour
	}
	b := &Bus{cfg: cfg, log: log, closed: make(chan struct{})}
	if cfg.URL == "" {
		if err := b.startEmbedded(); err != nil {
			return nil, err
		}
	} else {
		opts := []nats.Option{nats.Name("vigil"), nats.MaxReconnects(-1), b.onClosed()}
		if cfg.CredsFile != "" {
			opts = append(opts, nats.UserCredentials(cfg.CredsFile))
		}
		nc, err := nats.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("bus: connect to external nats: %w", err)
		}
		b.nc = nc
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b.js = js
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       StreamEvents,
		Subjects:   []string{SubjectPrefix + ">"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     cfg.MaxAge,
		Replicas:   cfg.Replicas,
		Duplicates: 2 * time.Minute,
		Discard:    jetstream.DiscardOld,
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("bus: create stream %s: %w", StreamEvents, err)
	}
	b.stream = st
	return b, nil
}

func (b *Bus) startEmbedded() error {
	dir := b.cfg.Dir
	if dir == "" {
		return errors.New("bus: embedded server needs a data directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bus: create jetstream dir: %w", err)
	}
	opts := &server.Options{
		ServerName:         "vigil",
		JetStream:          true,
		StoreDir:           dir,
		DontListen:         b.cfg.Listen == "",
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         1 << 20,
		JetStreamMaxMemory: 256 << 20,
	}
	if len(b.cfg.StoreKey) > 0 {
		if len(b.cfg.StoreKey) < 32 {
			return errors.New("bus: store key must be at least 32 bytes")
		}
		opts.JetStreamCipher = server.AES
		opts.JetStreamKey = hex.EncodeToString(b.cfg.StoreKey)
	}
	switch s := strings.TrimSpace(b.cfg.Sync); s {
	case "", "default":
	case "always":
		opts.SyncAlways = true
	default:
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("bus: sync %q: want default, always or a positive duration", s)
		}
		opts.SyncInterval = d
	}
	var user, pass string
	if b.cfg.Listen != "" {
		host, port, err := splitHostPort(b.cfg.Listen)
		if err != nil {
			return fmt.Errorf("bus: listen %q: %w", b.cfg.Listen, err)
		}
		opts.Host, opts.Port = host, port
		// A listening server gets one user with explicit permissions
		// (security row 40): never an open, permissionless account.
		user = "vigil"
		pass, err = loadOrCreatePassword(filepath.Join(dir, "nats-password"))
		if err != nil {
			return err
		}
		opts.Users = []*server.User{{
			Username: user,
			Password: pass,
			Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{SubjectPrefix + ">", "$JS.API.>", "$JS.ACK.>", "_INBOX.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{SubjectPrefix + ">", "_INBOX.>"}},
			},
		}}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("bus: new embedded server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return errors.New("bus: embedded server not ready after 30s")
	}
	copts := []nats.Option{nats.InProcessServer(ns), nats.Name("vigil"), b.onClosed()}
	if user != "" {
		copts = append(copts, nats.UserInfo(user, pass))
	}
	nc, err := nats.Connect("", copts...)
	if err != nil {
		ns.Shutdown()
		return fmt.Errorf("bus: connect in-process: %w", err)
	}
	b.ns, b.nc = ns, nc
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", 0, errors.New("want host:port")
	}
	var port int
	if _, err := fmt.Sscanf(addr[i+1:], "%d", &port); err != nil {
		return "", 0, fmt.Errorf("port: %w", err)
	}
	return strings.Trim(addr[:i], "[]"), port, nil
}

func loadOrCreatePassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("bus: read nats password: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("bus: generate nats password: %w", err)
	}
	p := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(p+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("bus: write nats password: %w", err)
	}
	return p, nil
}

func (b *Bus) onClosed() nats.Option {
	return nats.ClosedHandler(func(*nats.Conn) {
		select {
		case <-b.closed:
		default:
			close(b.closed)
		}
	})
}

// ClientURL is the embedded server's listener URL, or "" when it has none.
func (b *Bus) ClientURL() string {
	if b.ns == nil || b.cfg.Listen == "" {
		return ""
	}
	return b.ns.ClientURL()
}

// Embedded reports whether the bus runs an embedded server.
func (b *Bus) Embedded() bool { return b.ns != nil }

// Publish stores data on subject in JetStream and returns once it is
// stored. A non-empty msgID deduplicates retries within the stream's
// duplicate window.
//
// encoding names the payload's format (the EncodingHeader), so a consumer
// can tell a message it cannot read yet (written by a newer version during
// a rolling upgrade) from a corrupt one.
func (b *Bus) Publish(ctx context.Context, subject, msgID, encoding string, data []byte) error {
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	m := nats.NewMsg(subject)
	m.Data = data
	if encoding != "" {
		m.Header.Set(EncodingHeader, encoding)
	}
	_, err := b.js.PublishMsg(ctx, m, opts...)
	if err != nil {
		return fmt.Errorf("bus: publish: %w", err)
	}
	return nil
}

// Ping checks the connection and JetStream answer.
func (b *Bus) Ping(ctx context.Context) error {
	if b.nc == nil || !b.nc.IsConnected() {
		return errors.New("bus: not connected")
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("bus: account info: %w", err)
	}
	return nil
}

// StreamInfo returns the number of messages in the EVENTS stream.
func (b *Bus) StreamMsgs(ctx context.Context) (uint64, error) {
	info, err := b.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("bus: stream info: %w", err)
	}
	return info.State.Msgs, nil
}

// Msg is one message handed to a batch handler.
type Msg struct {
	Subject  string
	Encoding string // the EncodingHeader value; "" if absent
	Data     []byte
	m        jetstream.Msg
	later    time.Duration
}

// EncodingHeader is the message header naming the payload format.
const EncodingHeader = "Vigil-Encoding"

// Later asks for the message to be redelivered after d instead of being
// acknowledged: for a message this version cannot read yet but a newer one
// will. It is neither stored nor dropped.
func (m *Msg) Later(d time.Duration) { m.later = d }

// BatchHandler processes a batch. Returning nil acknowledges every message;
// an error makes all of them redeliver later (the handler must be
// idempotent). Poison lists indexes of messages that can never be processed:
// they are terminated instead of redelivered.
type BatchHandler func(ctx context.Context, msgs []Msg) (poison []int, err error)

// ConsumeConfig tunes a durable consumer.
type ConsumeConfig struct {
	Durable  string // consumer name, shared by every instance
	Filter   string // subject filter; default all events
	MaxBatch int    // messages per handler call; default 1000
	// Linger is how long a batch may wait to fill up after its first
	// message: larger batches mean fewer, cheaper store commits. Default
	// 20ms; the events are already durable in the stream meanwhile.
	Linger time.Duration
	// NoLinger makes a batch whatever has arrived by the time its first
	// message is taken, with no waiting to fill it (Linger is ignored): for
	// a latency-first consumer such as the alarms' urgent lane.
	NoLinger bool
	// StartTime, when set, makes a consumer that does not exist yet start
	// with the messages stored from then on (not the whole stream): a new
	// processor added to an existing deployment does not act on history.
	// An existing consumer keeps its position.
	StartTime time.Time
	AckWait   time.Duration // default 30s
	RetryWait time.Duration // delay before redelivery after a handler error; default 1s
}

// Consume runs a durable pull consumer until ctx is done, handing the
// handler batches of whatever has arrived (up to MaxBatch) — group commit:
// one handler call, one store transaction, however many messages are
// waiting. It returns nil when ctx is cancelled.
func (b *Bus) Consume(ctx context.Context, cc ConsumeConfig, h BatchHandler) error {
	if cc.MaxBatch <= 0 {
		cc.MaxBatch = 1000
	}
	if cc.AckWait <= 0 {
		cc.AckWait = 30 * time.Second
	}
	if cc.RetryWait <= 0 {
		cc.RetryWait = time.Second
	}
	if cc.Linger <= 0 {
		cc.Linger = 20 * time.Millisecond
	}
	if cc.Filter == "" {
		cc.Filter = SubjectPrefix + ">"
	}
	ccfg := jetstream.ConsumerConfig{
		Durable:       cc.Durable,
		FilterSubject: cc.Filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cc.AckWait,
		MaxAckPending: 4 * cc.MaxBatch * 8,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	var cons jetstream.Consumer
	var err error
	if !cc.StartTime.IsZero() {
		cons, err = b.js.Consumer(ctx, StreamEvents, cc.Durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			st := cc.StartTime
			ccfg.DeliverPolicy, ccfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &st
			cons, err = b.js.CreateConsumer(ctx, StreamEvents, ccfg)
		}
	} else {
		cons, err = b.js.CreateOrUpdateConsumer(ctx, StreamEvents, ccfg)
	}
	if err != nil {
		return fmt.Errorf("bus: create consumer %s: %w", cc.Durable, err)
	}
	in := make(chan jetstream.Msg, 2*cc.MaxBatch)
	cctx, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case in <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(2*cc.MaxBatch))
	if err != nil {
		return fmt.Errorf("bus: consume %s: %w", cc.Durable, err)
	}
	defer cctx.Stop()

	batch := make([]jetstream.Msg, 0, cc.MaxBatch)
	msgs := make([]Msg, 0, cc.MaxBatch)
	linger := time.NewTimer(cc.Linger)
	defer linger.Stop()
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case m := <-in:
			batch = append(batch, m)
		}
		if cc.NoLinger {
		drain:
			for len(batch) < cc.MaxBatch {
				select {
				case m := <-in:
					batch = append(batch, m)
				default:
					break drain
				}
			}
		} else {
			linger.Reset(cc.Linger)
		}
	fill:
		for !cc.NoLinger && len(batch) < cc.MaxBatch {
			select {
			case m := <-in:
				batch = append(batch, m)
			case <-linger.C:
				break fill
			case <-ctx.Done():
				return nil
			}
		}
		msgs = msgs[:0]
		for _, m := range batch {
			var enc string
			if h := m.Headers(); h != nil {
				enc = h.Get(EncodingHeader)
			}
			msgs = append(msgs, Msg{Subject: m.Subject(), Encoding: enc, Data: m.Data(), m: m})
		}
		poison, err := h(ctx, msgs)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			b.log.Error("event batch failed; will redeliver", "consumer", cc.Durable, "batch", len(batch), "err", err)
			for _, m := range batch {
				_ = m.NakWithDelay(cc.RetryWait)
			}
			continue
		}
		bad := make(map[int]bool, len(poison))
		for _, i := range poison {
			bad[i] = true
		}
		for i, m := range batch {
			if bad[i] {
				_ = m.Term()
				continue
			}
			if d := msgs[i].later; d > 0 {
				_ = m.NakWithDelay(d)
				continue
			}
			// Fire-and-forget ack: a lost ack means one redelivery, which
			// the idempotent handler absorbs.
			_ = m.Ack()
		}
	}
}

// Close drains the connection and shuts the embedded server down.
func (b *Bus) Close() {
	if b.nc != nil {
		// Drain is asynchronous; wait for it so buffered acks are sent.
		if err := b.nc.Drain(); err == nil {
			select {
			case <-b.closed:
			case <-time.After(5 * time.Second):
			}
		}
		b.nc.Close()
	}
	if b.ns != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
	}
}
