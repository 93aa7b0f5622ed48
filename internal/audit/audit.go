// Package audit keeps Vigil's tamper-evident audit log: who did what to
// which object, when (UTC), from where and with what outcome, for every
// personal-data read and write, authentication event and authorisation
// failure.
//
// Records form a SHA-256 hash chain (each record's hash covers its fields
// and the previous record's hash, see Hash), appended through
// store.AuditStore, which serialises appenders across processes. Every
// Config.CheckpointEvery records, and on Checkpoint, the head of the chain
// is signed with the install's Ed25519 key (LoadOrCreateKey) and stored as
// a checkpoint, and an "audit anchor" line with the head's sequence number
// and hash is written to the process log: a rewrite of the whole chain
// then breaks a signature or disagrees with an anchor kept elsewhere.
// Verify walks the chain and names the first bad record; Export writes it
// as JSON lines.
//
// Record fails closed: it returns only once the entry is durable, and an
// error means the caller must refuse the access it was auditing. Concurrent
// Record calls are group-committed (one AppendAudit for all entries that
// queue while the previous append runs) by the callers themselves: the
// package starts no goroutines.
//
// Log injection: Details are encoded as canonical JSON (sorted keys, every
// control character, line separator and HTML-special character escaped),
// and any other field that is not plain printable text is stored Go-quoted
// (strconv.QuoteToASCII), so no stored or exported value can start a new
// line. Details are pseudonymous by convention: ids, never names, phone
// numbers, notes or positions.
//
// It imports only the standard library, internal/store (record types) and
// internal/clock; never drivers, HTTP or the bus.
package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"vigil/internal/clock"
	"vigil/internal/store"
)

// Outcomes of an audited action.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeFailed = "failed"
)

// Severities of an audit entry.
const (
	SeverityInfo    = "info"
	SeverityWarning = "warning"
	SeverityHigh    = "high"
)

// KeyFileName is the signing key's file name inside the data directory.
const KeyFileName = "audit-signing.key"

// Entry is one audited action.
type Entry struct {
	OrgID      string // "" for actions outside any organisation
	Actor      string // user id, "token:<id>", "system", "bootstrap"; required
	SourceIP   string
	Action     string // e.g. "person.read", "auth.login"; required
	ObjectType string
	ObjectID   string
	Outcome    string // OutcomeOK, OutcomeDenied or OutcomeFailed; required
	Severity   string // SeverityInfo (the default for ""), SeverityWarning or SeverityHigh
	// Details are extra facts, pseudonymous (ids, not names), stored as
	// canonical JSON.
	Details map[string]string
}

// Reader is what Verify and Export read.
type Reader interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
	ListAuditCheckpoints(ctx context.Context) ([]store.AuditCheckpoint, error)
}

// Store is what a Log needs: store.AuditStore.
type Store interface {
	Reader
	AppendAudit(ctx context.Context, recs []store.AuditRecord, chain func(headSeq int64, headHash []byte, recs []store.AuditRecord) error) error
	PutAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error
}

// Config tunes a Log. The zero value works.
type Config struct {
	// CheckpointEvery signs the head each time the chain crosses a
	// multiple of this many records; default 1000, negative never (only
	// Checkpoint then).
	CheckpointEvery int64
	// MaxBatch caps how many entries one append carries; default 256.
	// 1 turns group commit off: one AppendAudit per Record.
	MaxBatch int
	// WriteTimeout bounds one append and its checkpoint; default 10s. An
	// append runs to completion even if the Record call that started it
	// is cancelled, since other callers' entries ride in the same batch.
	WriteTimeout time.Duration
}

// Log appends entries to the audit chain. It is safe for concurrent use.
type Log struct {
	st  Store
	key ed25519.PrivateKey
	log *slog.Logger
	clk clock.Clock
	cfg Config

	// token is held by the one caller appending a batch at a time.
	token chan struct{}
	mu    sync.Mutex
	queue []*batch // waiting to be appended, oldest first; the last may still grow
}

type batch struct {
	recs []store.AuditRecord
	done chan struct{} // closed once appended, err set
	err  error
}

// New returns a Log appending to st and signing checkpoints with key. A nil
// logger discards anchors, a nil clock is the wall clock.
func New(st Store, key ed25519.PrivateKey, logger *slog.Logger, clk clock.Clock, cfg Config) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 1000
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	return &Log{st: st, key: key, log: logger, clk: clk, cfg: cfg, token: make(chan struct{}, 1)}
}

// Record appends e and returns once it is durable. An error means it is
// not stored (or, when the commit itself failed, not known to be): the
// caller must refuse the access it was auditing. Once queued, an entry is
// not abandoned when ctx ends: Record waits for its batch's append, which
// Config.WriteTimeout bounds.
func (l *Log) Record(ctx context.Context, e Entry) error {
	rec, err := e.record(l.clk.Now())
	if err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	l.mu.Lock()
	var b *batch
	if n := len(l.queue); n > 0 && len(l.queue[n-1].recs) < l.cfg.MaxBatch {
		b = l.queue[n-1]
	} else {
		b = &batch{done: make(chan struct{})}
		l.queue = append(l.queue, b)
	}
	b.recs = append(b.recs, rec)
	l.mu.Unlock()

	for {
		select {
		case <-b.done:
			return b.err
		case l.token <- struct{}{}:
		}
		// Holding the token: append the oldest batch, which is b's or one
		// queued before it (b is queued and not done, so the queue is not
		// empty).
		select {
		case <-b.done:
			<-l.token
			return b.err
		default:
		}
		l.mu.Lock()
		next := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		l.mu.Unlock()
		next.err = l.append(ctx, next.recs)
		close(next.done)
		<-l.token
		if next == b {
			return b.err
		}
	}
}

// append stores recs as one batch and signs a checkpoint when the batch
// crosses a multiple of CheckpointEvery.
func (l *Log) append(ctx context.Context, recs []store.AuditRecord) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.WriteTimeout)
	defer cancel()
	if err := l.st.AppendAudit(ctx, recs, chain); err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	first, last := recs[0], recs[len(recs)-1]
	if n := l.cfg.CheckpointEvery; n > 0 && (first.Seq-1)/n != last.Seq/n {
		// The entries are durable: a failed checkpoint does not fail
		// them, the next one covers them.
		if err := l.sign(ctx, last.Seq, last.Hash); err != nil {
			l.log.Error("audit checkpoint failed", "seq", last.Seq, "err", err)
		}
	}
	return nil
}

// chain fills Seq, PrevHash and Hash of recs after the head.
func chain(headSeq int64, headHash []byte, recs []store.AuditRecord) error {
	prev := headHash
	if headSeq == 0 {
		prev = genesis()
	} else if len(prev) != hashSize {
		return fmt.Errorf("audit head %d has a malformed hash", headSeq)
	}
	for i := range recs {
		recs[i].Seq = headSeq + int64(i) + 1
		recs[i].PrevHash = prev
		recs[i].Hash = Hash(recs[i])
		prev = recs[i].Hash
	}
	return nil
}

// Checkpoint signs the current head of the chain (whoever appended it) and
// stores it, unless the log is empty or the head is already signed. It
// refuses a head record that does not match its own hash.
func (l *Log) Checkpoint(ctx context.Context) error {
	var seq int64
	var hash []byte
	// An empty append reads the head under the appenders' lock.
	err := l.st.AppendAudit(ctx, nil, func(h int64, hh []byte, _ []store.AuditRecord) error {
		seq, hash = h, bytes.Clone(hh)
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if seq == 0 {
		return nil
	}
	recs, err := l.st.ListAudit(ctx, store.AuditFilter{AfterSeq: seq - 1, Limit: 1})
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if len(recs) != 1 || recs[0].Seq != seq || !bytes.Equal(Hash(recs[0]), hash) {
		return fmt.Errorf("audit checkpoint: head record %d does not match its hash; run vigil audit verify", seq)
	}
	if err := l.sign(ctx, seq, hash); err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	return nil
}

// sign stores a signed checkpoint of (seq, hash) and logs it as an anchor.
// A checkpoint already stored at seq counts as done.
func (l *Log) sign(ctx context.Context, seq int64, hash []byte) error {
	if len(l.key) != ed25519.PrivateKeySize {
		return errors.New("no valid Ed25519 signing key")
	}
	at := l.clk.Now().UTC()
	c := store.AuditCheckpoint{Seq: seq, At: at, Hash: hash, Signature: ed25519.Sign(l.key, checkpointMessage(seq, at, hash))}
	if err := l.st.PutAuditCheckpoint(ctx, c); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	l.log.Info("audit anchor", "seq", seq, "hash", hex.EncodeToString(hash))
	return nil
}

// record validates and encodes e as a record at at; the chain fields stay
// empty.
func (e Entry) record(at time.Time) (store.AuditRecord, error) {
	if e.Actor == "" {
		return store.AuditRecord{}, errors.New("actor is required")
	}
	if e.Action == "" {
		return store.AuditRecord{}, errors.New("action is required")
	}
	switch e.Outcome {
	case OutcomeOK, OutcomeDenied, OutcomeFailed:
	default:
		return store.AuditRecord{}, errors.New("outcome must be ok, denied or failed")
	}
	switch e.Severity {
	case "":
		e.Severity = SeverityInfo
	case SeverityInfo, SeverityWarning, SeverityHigh:
	default:
		return store.AuditRecord{}, errors.New("severity must be info, warning or high")
	}
	details, err := encodeDetails(e.Details)
	if err != nil {
		return store.AuditRecord{}, err
	}
	return store.AuditRecord{
		At:         at.UTC(),
		OrgID:      field(e.OrgID),
		Actor:      field(e.Actor),
		SourceIP:   field(e.SourceIP),
		Action:     field(e.Action),
		ObjectType: field(e.ObjectType),
		ObjectID:   field(e.ObjectID),
		Outcome:    e.Outcome,
		Severity:   e.Severity,
		Details:    details,
	}, nil
}

// encodeDetails returns d as canonical JSON: keys sorted, no spaces, every
// control and format character, U+2028, U+2029 and <, >, & escaped,
// invalid UTF-8 replaced by U+FFFD; "" for no details.
func encodeDetails(d map[string]string) (string, error) {
	if len(d) == 0 {
		return "", nil
	}
	b, err := json.Marshal(d) // encoding/json sorts map keys
	if err != nil {
		return "", fmt.Errorf("encode details: %w", err)
	}
	// encoding/json leaves DEL, C1 controls and format characters such as
	// U+202E (right-to-left override) as they are; escape them too. They
	// occur only inside strings, where \uXXXX decodes to the same text.
	var out strings.Builder
	for _, r := range string(b) {
		switch {
		case plainRune(r):
			out.WriteRune(r)
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	return out.String(), nil
}

// field returns s as stored: unchanged when it is valid UTF-8 without
// control or line-separating characters and does not start with a double
// quote, else Go-quoted with strconv.QuoteToASCII. Quoted values start with
// a quote and plain ones never do, so strconv.Unquote recovers the
// original one-to-one.
func field(s string) string {
	if plain(s) {
		return s
	}
	return strconv.QuoteToASCII(s)
}

func plain(s string) bool {
	if len(s) > 0 && s[0] == '"' {
		return false
	}
	for _, r := range s {
		if !plainRune(r) {
			return false
		}
	}
	return true
}

// plainRune reports whether r may appear unescaped: not the replacement
// for invalid UTF-8, not a control or format character (bidirectional
// overrides, zero-width characters), not a line or paragraph separator.
func plainRune(r rune) bool {
	return r != utf8.RuneError && !unicode.IsControl(r) && !unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}
