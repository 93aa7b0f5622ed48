package retention_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"vigil/internal/audit"
	"vigil/internal/clock"
	"vigil/internal/retention"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

// auditFixture records 25 entries 7 years old and 10 a day old (acme's,
// every fifth of no organisation), with a checkpoint every 10 records.
func auditFixture(t *testing.T) (*sqlite.Store, string, ed25519.PublicKey) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{AutoMigrate: true})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	must(t, s.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme"}))
	_, key, err := ed25519.GenerateKey(nil)
	must(t, err)
	clk := clock.NewManual(now.Add(-7 * 365 * retention.Day))
	l := audit.New(s, key, nil, clk, audit.Config{CheckpointEvery: 10, MaxBatch: 1})
	for i := range 35 {
		if i == 25 {
			clk.Advance(7*365*retention.Day - retention.Day)
		}
		org := "acme"
		if i%5 == 4 {
			org = ""
		}
		must(t, l.Record(ctx, audit.Entry{OrgID: org, Actor: "u1", Action: "person.read", ObjectType: "person",
			ObjectID: fmt.Sprintf("p%d", i), Outcome: audit.OutcomeOK}))
	}
	return s, path, key.Public().(ed25519.PublicKey)
}

func verify(t *testing.T, s *sqlite.Store, pub ed25519.PublicKey) audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), s, pub)
	must(t, err)
	return rep
}

// TestAuditPurge: the purge cuts the chain at the last checkpoint before
// the first record still in its period (records 1–19 go, 20 stays:
// checkpoints are at 10, 20, 30), Verify passes from there and still
// detects tampering in what remains.
func TestAuditPurge(t *testing.T) {
	ctx := context.Background()
	s, _, pub := auditFixture(t)
	if rep := verify(t, s, pub); !rep.OK() || rep.Records != 35 {
		t.Fatalf("before purge: %+v", rep)
	}
	p := retention.New(s, clock.NewManual(now), nil, retention.Config{BatchRows: 5})
	r, err := p.Run(ctx)
	must(t, err)
	if r.Rows[retention.Audit] != 19 {
		t.Fatalf("purged %d audit records, want 19 (1 to 19)", r.Rows[retention.Audit])
	}
	rep := verify(t, s, pub)
	if !rep.OK() || rep.Start != 20 || rep.Records != 16 || rep.Checkpoints != 2 {
		t.Fatalf("after purge: %+v, want intact from 20 with 16 records and checkpoints 20 and 30", rep)
	}
	// Nothing more until the day-old records age: a second run is a no-op.
	if r, err := p.Run(ctx); err != nil || r.Rows[retention.Audit] != 0 {
		t.Fatalf("second run: %v %v", r.Rows, err)
	}

	for _, tc := range []struct {
		name, sql string
		bad       int64
		reason    string
	}{
		{"edit the kept checkpointed record", `UPDATE audit_log SET object_id = 'px' WHERE seq = 20`, 20, "does not match its hash"},
		{"edit a later record", `UPDATE audit_log SET actor = 'u2' WHERE seq = 27`, 27, "does not match its hash"},
		{"delete the start", `DELETE FROM audit_checkpoints WHERE seq = 20; DELETE FROM audit_log WHERE seq IN (20, 21)`, 1, "not checkpointed"},
		{"delete the checkpoint only", `DELETE FROM audit_checkpoints WHERE seq = 20`, 1, "not checkpointed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, path, pub := auditFixture(t)
			if _, err := retention.New(s, clock.NewManual(now), nil, retention.Config{}).Run(ctx); err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
			must(t, err)
			defer db.Close()
			if _, err := db.Exec(tc.sql); err != nil {
				t.Fatalf("%s: %v", tc.sql, err)
			}
			rep := verify(t, s, pub)
			if rep.OK() || rep.FirstBad != tc.bad || !strings.Contains(rep.Reason, tc.reason) {
				t.Errorf("Verify: %+v, want bad at %d: %s", rep, tc.bad, tc.reason)
			}
		})
	}
}

// TestAuditPurgeHonoursLongestPeriod: with acme keeping audit records 8
// years, its 7-year-old records, and the records of no organisation
// between them, stay.
func TestAuditPurgeHonoursLongestPeriod(t *testing.T) {
	ctx := context.Background()
	s, _, pub := auditFixture(t)
	must(t, s.SetRetention(ctx, store.RetentionPolicy{OrgID: "acme", Audit: 8 * 365 * retention.Day}))
	r, err := retention.New(s, clock.NewManual(now), nil, retention.Config{}).Run(ctx)
	must(t, err)
	if r.Rows[retention.Audit] != 0 {
		t.Errorf("purged %d audit records, want none", r.Rows[retention.Audit])
	}
	if rep := verify(t, s, pub); !rep.OK() || rep.Start != 0 || rep.Records != 35 {
		t.Errorf("Verify: %+v", rep)
	}
}
