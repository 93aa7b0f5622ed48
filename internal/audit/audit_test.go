package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/audit"
	"vigil/internal/clock"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

var t0 = time.Date(2026, 3, 1, 9, 30, 0, 123456789, time.UTC)

// syncBuffer is a log sink safe for concurrent writers and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// openSQLite opens a fresh SQLite store and returns it with its file.
func openSQLite(t testing.TB) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.db")
	return reopen(t, path), path
}

// reopen opens another handle on the store at path: a second process, as
// far as locking goes.
func reopen(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	paths.Store(st, path)
	return st
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// entry is the i-th test entry: a read of a person's record.
func entry(i int) audit.Entry {
	return audit.Entry{
		OrgID: "acme", Actor: fmt.Sprintf("u%d", i%3), SourceIP: "192.0.2.1",
		Action: "person.read", ObjectType: "person", ObjectID: fmt.Sprintf("p%d", i),
		Outcome: audit.OutcomeOK, Details: map[string]string{"request_id": fmt.Sprintf("r%d", i)},
	}
}

// recordN records n entries one after another, the clock a second apart.
func recordN(t testing.TB, l *audit.Log, clk *clock.Manual, n int) {
	t.Helper()
	for i := range n {
		if err := l.Record(context.Background(), entry(i)); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
		clk.Advance(time.Second)
	}
}

func verify(t testing.TB, st audit.Reader, key ed25519.PrivateKey, anchors ...audit.Anchor) audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), st, pub(key), anchors...)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// anchors parses the "audit anchor" lines of a log.
func anchors(t testing.TB, logs string) []audit.Anchor {
	t.Helper()
	var out []audit.Anchor
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		if !strings.Contains(sc.Text(), "audit anchor") {
			continue
		}
		a, err := audit.ParseAnchor(sc.Text())
		if err != nil {
			t.Fatalf("ParseAnchor(%q): %v", sc.Text(), err)
		}
		out = append(out, a)
	}
	return out
}

func TestAuditRecordVerify(t *testing.T) {
	ctx := context.Background()
	st, _ := openSQLite(t)
	key := newKey(t)
	var logs syncBuffer
	clk := clock.NewManual(t0)
	l := audit.New(st, key, slog.New(slog.NewTextHandler(&logs, nil)), clk, audit.Config{CheckpointEvery: 10})

	if err := l.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint of an empty log: %v", err)
	}
	if got := verify(t, st, key); got != (audit.Report{}) {
		t.Errorf("empty log: %+v, want a zero report", got)
	}
	recordN(t, l, clk, 25)
	if err := l.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if err := l.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint of a signed head: %v", err)
	}
	as := anchors(t, logs.String())
	if len(as) < 3 || as[0].Seq != 10 || as[1].Seq != 20 || as[2].Seq != 25 {
		t.Fatalf("anchors %v, want 10, 20, 25", as)
	}
	got := verify(t, st, key, as...)
	want := audit.Report{Records: 25, Checkpoints: 3, LastCheckpoint: 25, Anchors: len(as)}
	if got != want || !got.OK() {
		t.Errorf("Verify = %+v, want %+v", got, want)
	}

	recs, err := st.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	r := recs[4]
	wantRec := store.AuditRecord{
		Seq: 5, At: t0.Add(4 * time.Second), OrgID: "acme", Actor: "u1", SourceIP: "192.0.2.1",
		Action: "person.read", ObjectType: "person", ObjectID: "p4", Outcome: "ok", Severity: "info",
		Details: `{"request_id":"r4"}`, PrevHash: recs[3].Hash, Hash: audit.Hash(r),
	}
	if diff := cmp.Diff(wantRec, r); diff != "" {
		t.Errorf("stored record (-want +got):\n%s", diff)
	}
	if !bytes.Equal(recs[0].PrevHash, make([]byte, 32)) {
		t.Errorf("record 1's prev hash %x, want 32 zero bytes", recs[0].PrevHash)
	}
	if strings.Contains(logs.String(), fmt.Sprintf("%x", key.Seed())) {
		t.Error("the log holds the signing key")
	}

	// A checkpoint is refused for a head that does not match its hash.
	raw(t, st, `UPDATE audit_log SET actor = 'u9' WHERE seq = 25`)
	if err := l.Checkpoint(ctx); err == nil {
		t.Error("Checkpoint of an edited head: no error")
	}
}

// raw runs SQL on the store's file behind its back, as an attacker with
// the file would.
func raw(t testing.TB, st *sqlite.Store, q string, args ...any) {
	t.Helper()
	rawDB(t, st).Exec(t, q, args...)
}

type sqlDB struct{ db *sql.DB }

func (d sqlDB) Exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := d.db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// paths maps each *sqlite.Store the tests opened to its file.
var paths sync.Map

func rawDB(t testing.TB, st *sqlite.Store) sqlDB {
	t.Helper()
	p, ok := paths.Load(st)
	if !ok {
		t.Fatal("no file known for the store")
	}
	db, err := sql.Open("sqlite", p.(string)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return sqlDB{db}
}

// rehash recomputes the hashes of records from..to in the file as an
// attacker who knows the hash (it is no secret) would, keeping the chain
// linked.
func rehash(t testing.TB, st *sqlite.Store, from, to int64) {
	t.Helper()
	recs, err := st.ListAudit(context.Background(), store.AuditFilter{AfterSeq: from - 2})
	if err != nil {
		t.Fatal(err)
	}
	prev := recs[0].PrevHash
	if from > 1 {
		prev = recs[0].Hash
		recs = recs[1:]
	}
	db := rawDB(t, st)
	for _, r := range recs {
		if r.Seq > to {
			break
		}
		r.PrevHash = prev
		r.Hash = audit.Hash(r)
		db.Exec(t, `UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?`, r.PrevHash, r.Hash, r.Seq)
		prev = r.Hash
	}
}

func TestAuditTamper(t *testing.T) {
	// 20 records, a checkpoint (and an anchor) every 5.
	for _, tc := range []struct {
		name       string
		tamper     func(t *testing.T, st *sqlite.Store)
		useAnchors bool
		wantBad    int64
		wantReason string
	}{
		{"edit details", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `UPDATE audit_log SET details = '{"request_id":"r0"}' WHERE seq = 7`)
		}, false, 7, "does not match its hash"},
		{"edit time", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `UPDATE audit_log SET at = at + 1 WHERE seq = 12`)
		}, false, 12, "does not match its hash"},
		{"delete a row", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `DELETE FROM audit_log WHERE seq = 7`)
		}, false, 7, "record 7 is missing"},
		{"delete a row and renumber the rest", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `DELETE FROM audit_log WHERE seq = 7`)
			for s := 8; s <= 20; s++ {
				raw(t, st, `UPDATE audit_log SET seq = seq - 1 WHERE seq = ?`, s)
			}
		}, false, 7, "does not match its hash"},
		{"swap two rows", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `UPDATE audit_log SET seq = -1 WHERE seq = 7`)
			raw(t, st, `UPDATE audit_log SET seq = 7 WHERE seq = 12`)
			raw(t, st, `UPDATE audit_log SET seq = 12 WHERE seq = -1`)
		}, false, 7, "does not match its hash"},
		{"swap an adjacent pair", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `UPDATE audit_log SET seq = -1 WHERE seq = 8`)
			raw(t, st, `UPDATE audit_log SET seq = 8 WHERE seq = 9`)
			raw(t, st, `UPDATE audit_log SET seq = 9 WHERE seq = -1`)
		}, false, 8, "does not match its hash"},
		{"edit a row and recompute its hash", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `UPDATE audit_log SET outcome = 'denied' WHERE seq = 7`)
			rehash(t, st, 7, 7)
		}, false, 8, "does not link"},
		{"edit a row and rewrite the chain after it", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `UPDATE audit_log SET outcome = 'denied' WHERE seq = 7`)
			rehash(t, st, 7, 20)
		}, false, 10, "differs from its signed checkpoint"},
		{"rewrite the chain and re-sign its checkpoints with another key", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `UPDATE audit_log SET outcome = 'denied' WHERE seq = 7`)
			rehash(t, st, 7, 20)
			forger := newKey(t)
			cps, err := st.ListAuditCheckpoints(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			recs, err := st.ListAudit(context.Background(), store.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cps {
				h := recs[c.Seq-1].Hash
				raw(t, st, `UPDATE audit_checkpoints SET hash = ?, signature = ? WHERE seq = ?`, h, ed25519.Sign(forger, audit.CheckpointMessage(c.Seq, c.At, h)), c.Seq)
			}
		}, false, 5, "bad signature"},
		{"forge a checkpoint signature", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `UPDATE audit_checkpoints SET signature = ? WHERE seq = 10`, bytes.Repeat([]byte{7}, 64))
		}, false, 10, "bad signature"},
		{"move a checkpoint's time", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `UPDATE audit_checkpoints SET at = at - 1000 WHERE seq = 15`)
		}, false, 15, "bad signature"},
		{"truncate the tail after a checkpoint", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `DELETE FROM audit_log WHERE seq >= 8`)
		}, false, 8, "log truncated"},
		{"truncate the tail and its checkpoints: the anchors tell", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `DELETE FROM audit_checkpoints WHERE seq >= 8`)
			raw(t, st, `DELETE FROM audit_log WHERE seq >= 8`)
		}, true, 8, "log truncated"},
		{"rewrite everything and drop the checkpoints: the anchors tell", func(t *testing.T, st *sqlite.Store) {
			raw(t, st, `DELETE FROM audit_checkpoints`)
			raw(t, st, `UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3`)
			rehash(t, st, 3, 20)
		}, true, 5, "differs from the saved anchor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, _ := openSQLite(t)
			key := newKey(t)
			var logs syncBuffer
			clk := clock.NewManual(t0)
			l := audit.New(st, key, slog.New(slog.NewJSONHandler(&logs, nil)), clk, audit.Config{CheckpointEvery: 5})
			recordN(t, l, clk, 20)
			as := anchors(t, logs.String())
			if len(as) != 4 {
				t.Fatalf("%d anchors, want 4", len(as))
			}
			if rep := verify(t, st, key, as...); !rep.OK() || rep.Records != 20 || rep.Checkpoints != 4 || rep.Anchors != 4 {
				t.Fatalf("before tampering: %+v", rep)
			}
			tc.tamper(t, st)
			var use []audit.Anchor
			if tc.useAnchors {
				use = as
			} else if rep := verify(t, st, key); tc.wantBad != 0 && rep.FirstBad != tc.wantBad {
				t.Errorf("without anchors: %+v, want first bad %d", rep, tc.wantBad)
			}
			rep := verify(t, st, key, use...)
			if rep.FirstBad != tc.wantBad || !strings.Contains(rep.Reason, tc.wantReason) || rep.OK() {
				t.Errorf("Verify = %+v, want first bad %d because %q", rep, tc.wantBad, tc.wantReason)
			}
		})
	}
}

func TestAuditVerifyNeedsKey(t *testing.T) {
	st, _ := openSQLite(t)
	clk := clock.NewManual(t0)
	l := audit.New(st, newKey(t), nil, clk, audit.Config{CheckpointEvery: 2})
	recordN(t, l, clk, 2)
	if _, err := audit.Verify(context.Background(), st, nil); err == nil {
		t.Error("Verify of a log with checkpoints and no key: no error")
	}
	if rep := verify(t, st, newKey(t)); rep.FirstBad != 2 || !strings.Contains(rep.Reason, "bad signature") {
		t.Errorf("Verify with another key: %+v, want a bad signature at 2", rep)
	}
}

func TestAuditLogInjection(t *testing.T) {
	ctx := context.Background()
	st, _ := openSQLite(t)
	key := newKey(t)
	var logs syncBuffer
	l := audit.New(st, key, slog.New(slog.NewTextHandler(&logs, nil)), clock.NewManual(t0), audit.Config{})
	forged := "pendant\n2026-03-01T09:30:00Z INFO audit actor=admin action=auth.login outcome=ok\r\x1b[2K\u2028\u202e"
	e := audit.Entry{
		OrgID: "acme", Actor: "u1", SourceIP: "192.0.2.1\nfake", Action: "device.rename",
		ObjectType: "device", ObjectID: "d1\n… admin login ok", Outcome: audit.OutcomeOK,
		Details: map[string]string{"name": forged, "<b>": `"quoted" \ back`, "a": "1"},
	}
	if err := l.Record(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := st.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(recs) != 1 {
		t.Fatalf("ListAudit: %v %v", recs, err)
	}
	r := recs[0]
	for name, v := range map[string]string{"details": r.Details, "object_id": r.ObjectID, "source_ip": r.SourceIP} {
		for _, c := range v {
			if c < 0x20 || c == 0x7f || c == '\u2028' || c == '\u202e' {
				t.Errorf("stored %s %q holds the control character %U", name, v, c)
			}
		}
	}
	if want := `{"\u003cb\u003e":"\"quoted\" \\ back","a":"1","name":"pendant\n2026-03-01T09:30:00Z INFO audit actor=admin action=auth.login outcome=ok\r\u001b[2K\u2028\u202e"}`; r.Details != want {
		t.Errorf("details stored as\n%s\nwant canonical JSON (sorted keys, escaped)\n%s", r.Details, want)
	}
	var back map[string]string
	if err := json.Unmarshal([]byte(r.Details), &back); err != nil || !cmp.Equal(back, e.Details) {
		t.Errorf("details do not decode to the original: %v %v", back, err)
	}
	for stored, orig := range map[string]string{r.ObjectID: e.ObjectID, r.SourceIP: e.SourceIP} {
		if got, err := strconv.Unquote(stored); err != nil || got != orig {
			t.Errorf("stored %q does not unquote to %q: %q %v", stored, orig, got, err)
		}
	}
	if r.OrgID != "acme" || r.Actor != "u1" {
		t.Errorf("plain fields changed: %q %q", r.OrgID, r.Actor)
	}

	var out bytes.Buffer
	if err := audit.Export(ctx, st, &out, store.AuditFilter{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("export of one record has %d lines:\n%s", len(lines), out.String())
	}
	if strings.Contains(out.String(), "\r") || strings.Contains(out.String(), "\x1b") || strings.Contains(out.String(), "\u2028") {
		t.Errorf("export holds raw control characters: %q", out.String())
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || strings.Contains(logs.String(), "admin login ok") {
		t.Errorf("process log: %q, want one anchor line and no entry content", logs.String())
	}
	if rep := verify(t, st, key); !rep.OK() {
		t.Errorf("Verify: %+v", rep)
	}
}

func TestAuditCanonicalDetails(t *testing.T) {
	ctx := context.Background()
	st, _ := openSQLite(t)
	l := audit.New(st, newKey(t), nil, clock.NewManual(t0), audit.Config{})
	d := map[string]string{}
	for i := range 20 {
		d[fmt.Sprintf("k%02d", 19-i)] = strconv.Itoa(i)
	}
	for range 3 {
		e := entry(0)
		e.Details = d
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	e := entry(0)
	e.Details = nil
	if err := l.Record(ctx, e); err != nil {
		t.Fatal(err)
	}
	recs, _ := st.ListAudit(ctx, store.AuditFilter{})
	if recs[0].Details != recs[1].Details || recs[1].Details != recs[2].Details || !strings.HasPrefix(recs[0].Details, `{"k00":"19","k01":"18",`) {
		t.Errorf("details not canonical: %s / %s", recs[0].Details, recs[1].Details)
	}
	if recs[3].Details != "" {
		t.Errorf("no details stored as %q, want empty", recs[3].Details)
	}
}

func TestAuditEntryValidation(t *testing.T) {
	st, _ := openSQLite(t)
	l := audit.New(st, newKey(t), nil, nil, audit.Config{})
	for _, tc := range []struct {
		name   string
		change func(*audit.Entry)
	}{
		{"no actor", func(e *audit.Entry) { e.Actor = "" }},
		{"no action", func(e *audit.Entry) { e.Action = "" }},
		{"no outcome", func(e *audit.Entry) { e.Outcome = "" }},
		{"unknown outcome", func(e *audit.Entry) { e.Outcome = "maybe" }},
		{"unknown severity", func(e *audit.Entry) { e.Severity = "critical" }},
	} {
		e := entry(1)
		tc.change(&e)
		if err := l.Record(context.Background(), e); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	e := entry(1)
	e.Severity = audit.SeverityHigh
	if err := l.Record(context.Background(), e); err != nil {
		t.Errorf("severity high: %v", err)
	}
	recs, _ := st.ListAudit(context.Background(), store.AuditFilter{})
	if len(recs) != 1 || recs[0].Severity != "high" {
		t.Errorf("records %+v, want only the valid one", recs)
	}
}

// failing is a store whose appends fail: an unwritable audit sink.
type failing struct {
	audit.Store
	err error
}

func (f failing) AppendAudit(context.Context, []store.AuditRecord, func(int64, []byte, []store.AuditRecord) error) error {
	return f.err
}

func TestAuditFailClosed(t *testing.T) {
	st, _ := openSQLite(t)
	sink := errors.New("disk full")
	l := audit.New(failing{st, sink}, newKey(t), nil, nil, audit.Config{})
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = l.Record(context.Background(), entry(i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, sink) {
			t.Errorf("Record %d with a failing store: %v, want an error wrapping %v", i, err, sink)
		}
	}
	if err := l.Checkpoint(context.Background()); !errors.Is(err, sink) {
		t.Errorf("Checkpoint with a failing store: %v", err)
	}
	// The store recovers: so does the log.
	ok := audit.New(st, newKey(t), nil, nil, audit.Config{})
	if err := ok.Record(context.Background(), entry(0)); err != nil {
		t.Errorf("Record after recovery: %v", err)
	}

	// A real store made unwritable.
	st2, _ := openSQLite(t)
	l2 := audit.New(st2, newKey(t), nil, nil, audit.Config{})
	raw(t, st2, `CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit sink down'); END`)
	if err := l2.Record(context.Background(), entry(0)); err == nil {
		t.Error("Record into an unwritable audit table: no error")
	}
}

// TestAuditConcurrent runs two Logs on two handles of one SQLite file, as
// two processes would, each with concurrent callers: the chain stays
// gap-free and linked, group commit or not, past one page of Verify.
func TestAuditConcurrent(t *testing.T) {
	for _, maxBatch := range []int{0, 1} {
		t.Run(fmt.Sprintf("MaxBatch=%d", maxBatch), func(t *testing.T) {
			st, path := openSQLite(t)
			st2 := reopen(t, path)
			key := newKey(t)
			cfg := audit.Config{CheckpointEvery: 100, MaxBatch: maxBatch}
			logs := []*audit.Log{audit.New(st, key, nil, nil, cfg), audit.New(st2, key, nil, nil, cfg)}
			workers, each := 8, 70
			if maxBatch == 1 {
				workers, each = 4, 20
			}
			var wg sync.WaitGroup
			errs := make(chan error, 2*workers)
			for li, l := range logs {
				for w := range workers {
					wg.Go(func() {
						for i := range each {
							if err := l.Record(context.Background(), entry(li*100000+w*1000+i)); err != nil {
								errs <- err
								return
							}
						}
					})
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			total := int64(2 * workers * each)
			rep := verify(t, st, key)
			if !rep.OK() || rep.Records != total || rep.Checkpoints == 0 {
				t.Fatalf("Verify = %+v, want %d records, checkpoints, no bad one", rep, total)
			}
			var out bytes.Buffer
			if err := audit.Export(context.Background(), st2, &out, store.AuditFilter{AfterSeq: 5, Limit: int(total) - 10}); err != nil {
				t.Fatal(err)
			}
			if n := int64(strings.Count(out.String(), "\n")); n != total-10 {
				t.Errorf("export of %d records after 5 has %d lines", total-10, n)
			}
		})
	}
}

func TestAuditExport(t *testing.T) {
	ctx := context.Background()
	st, _ := openSQLite(t)
	clk := clock.NewManual(t0)
	l := audit.New(st, newKey(t), nil, clk, audit.Config{})
	recordN(t, l, clk, 3)
	e := entry(9)
	e.OrgID, e.Action = "beta", "contact.read"
	if err := l.Record(ctx, e); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := audit.Export(ctx, st, &out, store.AuditFilter{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), out.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &got); err != nil {
		t.Fatal(err)
	}
	recs, _ := st.ListAudit(ctx, store.AuditFilter{})
	want := map[string]any{
		"seq": 2.0, "at": "2026-03-01T09:30:01.123456789Z", "org_id": "acme", "actor": "u1", "source_ip": "192.0.2.1",
		"action": "person.read", "object_type": "person", "object_id": "p1", "outcome": "ok", "severity": "info",
		"details": `{"request_id":"r1"}`, "prev_hash": fmt.Sprintf("%x", recs[0].Hash), "hash": fmt.Sprintf("%x", recs[1].Hash),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("export line (-want +got):\n%s", diff)
	}
	out.Reset()
	if err := audit.Export(ctx, st, &out, store.AuditFilter{OrgID: "beta"}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "\n") != 1 || !strings.Contains(out.String(), `"seq":4`) {
		t.Errorf("export of org beta:\n%s", out.String())
	}
	out.Reset()
	if err := audit.Export(ctx, st, &out, store.AuditFilter{AfterSeq: 1, Limit: 2}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "\n") != 2 || !strings.HasPrefix(out.String(), `{"seq":2,`) {
		t.Errorf("export after 1, limit 2:\n%s", out.String())
	}
}

// TestAuditRandomEntries is a property test: any entries, however odd
// their strings, verify, and every field maps back to what was recorded.
func TestAuditRandomEntries(t *testing.T) {
	ctx := context.Background()
	st, _ := openSQLite(t)
	key := newKey(t)
	rng := mrand.New(mrand.NewPCG(1, 2))
	alphabet := []rune("ab\"\\\n\r\t\x00\x1b\x7f é\u2028\u202e<>&\U0001F600:=")
	str := func() string {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		if rng.IntN(10) == 0 {
			b.WriteString("\xff") // invalid UTF-8
		}
		return b.String()
	}
	clk := clock.NewManual(t0)
	l := audit.New(st, key, nil, clk, audit.Config{CheckpointEvery: 7})
	var entries []audit.Entry
	for range 60 {
		e := audit.Entry{
			OrgID: str(), Actor: "u" + str(), SourceIP: str(), Action: "a" + str(), ObjectType: str(), ObjectID: str(),
			Outcome:  []string{audit.OutcomeOK, audit.OutcomeDenied, audit.OutcomeFailed}[rng.IntN(3)],
			Severity: []string{"", audit.SeverityInfo, audit.SeverityWarning, audit.SeverityHigh}[rng.IntN(4)],
		}
		if rng.IntN(2) == 0 {
			e.Details = map[string]string{str(): str(), str(): str()}
		}
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Duration(rng.IntN(1e9)))
		entries = append(entries, e)
	}
	if rep := verify(t, st, key); !rep.OK() || rep.Records != 60 || rep.Checkpoints != 8 {
		t.Fatalf("Verify = %+v", rep)
	}
	recs, _ := st.ListAudit(ctx, store.AuditFilter{})
	unquote := func(s string) string {
		if strings.HasPrefix(s, `"`) {
			u, err := strconv.Unquote(s)
			if err != nil {
				t.Fatalf("stored %q does not unquote: %v", s, err)
			}
			return u
		}
		return s
	}
	for i, r := range recs {
		e := entries[i]
		got := []string{unquote(r.OrgID), unquote(r.Actor), unquote(r.SourceIP), unquote(r.Action), unquote(r.ObjectType), unquote(r.ObjectID)}
		want := []string{e.OrgID, e.Actor, e.SourceIP, e.Action, e.ObjectType, e.ObjectID}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("record %d fields (-want +got):\n%s", r.Seq, diff)
		}
		all := r.OrgID + r.Actor + r.SourceIP + r.Action + r.ObjectType + r.ObjectID + r.Details
		if i := strings.IndexAny(all, "\n\r\x00\x1b\x7f\u2028\u202e"); i >= 0 {
			t.Errorf("record %d stores a raw control character at %d of %q", r.Seq, i, all)
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	for _, bc := range []struct {
		name     string
		maxBatch int
	}{{"one-append-per-record", 1}, {"group-commit", 0}} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/callers=%dxGOMAXPROCS", bc.name, par), func(b *testing.B) {
				st, _ := openSQLite(b)
				l := audit.New(st, newKey(b), nil, nil, audit.Config{MaxBatch: bc.maxBatch})
				e := entry(1)
				b.SetParallelism(par)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := l.Record(context.Background(), e); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// TestAuditHashEncoding pins the documented encoding: stored chains depend
// on it, so a change must be deliberate (a new version prefix).
func TestAuditHashEncoding(t *testing.T) {
	r := store.AuditRecord{
		Seq: 7, At: time.Unix(0, 1772357400123456789).In(time.FixedZone("X", 3600)), OrgID: "acme", Actor: "u1",
		SourceIP: "192.0.2.1", Action: "person.read", ObjectType: "person", ObjectID: "p1", Outcome: "ok",
		Severity: "info", Details: `{"k":"v"}`, PrevHash: bytes.Repeat([]byte{1}, 32), Hash: []byte("ignored"),
	}
	var b bytes.Buffer
	b.WriteString("vigil audit record v1\x00")
	u64 := func(v uint64) {
		var x [8]byte
		for i := range 8 {
			x[i] = byte(v >> (56 - 8*i))
		}
		b.Write(x[:])
	}
	u64(7)
	u64(1772357400123456789)
	for _, f := range []string{"acme", "u1", "192.0.2.1", "person.read", "person", "p1", "ok", "info", `{"k":"v"}`, strings.Repeat("\x01", 32)} {
		u64(uint64(len(f)))
		b.WriteString(f)
	}
	want := sha256.Sum256(b.Bytes())
	if got := audit.Hash(r); !bytes.Equal(got, want[:]) {
		t.Fatalf("Hash = %x, want %x", got, want)
	}

	// Every field counts, and moving a boundary between fields changes
	// the hash.
	changes := []func(*store.AuditRecord){
		func(r *store.AuditRecord) { r.Seq++ },
		func(r *store.AuditRecord) { r.At = r.At.Add(1) },
		func(r *store.AuditRecord) { r.OrgID += "x" },
		func(r *store.AuditRecord) { r.Actor += "x" },
		func(r *store.AuditRecord) { r.SourceIP += "x" },
		func(r *store.AuditRecord) { r.Action += "x" },
		func(r *store.AuditRecord) { r.ObjectType += "x" },
		func(r *store.AuditRecord) { r.ObjectID += "x" },
		func(r *store.AuditRecord) { r.Outcome = "denied" },
		func(r *store.AuditRecord) { r.Severity = "high" },
		func(r *store.AuditRecord) { r.Details = `{"k":"w"}` },
		func(r *store.AuditRecord) { r.PrevHash = bytes.Repeat([]byte{2}, 32) },
		func(r *store.AuditRecord) { r.OrgID, r.Actor = "acm", "eu1" },
		func(r *store.AuditRecord) { r.ObjectID, r.Outcome = "p1o", "k" },
	}
	for i, change := range changes {
		c := r
		change(&c)
		if bytes.Equal(audit.Hash(c), want[:]) {
			t.Errorf("change %d leaves the hash as it was", i)
		}
	}
	c := r
	c.Hash = nil
	if !bytes.Equal(audit.Hash(c), want[:]) {
		t.Error("the hash covers the Hash field")
	}
}
