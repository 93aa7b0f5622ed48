package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"vigil/internal/store"
)

// testChain is a stand-in for internal/audit's chain: Hash is SHA-256 of
// the previous hash, the seq and the action. headSeen, when set, gets the
// head each call saw.
func testChain(headSeen func(seq int64, hash []byte)) func(int64, []byte, []store.AuditRecord) error {
	return func(head int64, headHash []byte, recs []store.AuditRecord) error {
		if headSeen != nil {
			headSeen(head, bytes.Clone(headHash))
		}
		prev := headHash
		if head == 0 {
			prev = make([]byte, sha256.Size)
		}
		for i := range recs {
			recs[i].Seq = head + int64(i) + 1
			recs[i].PrevHash = prev
			h := sha256.New()
			h.Write(prev)
			binary.Write(h, binary.BigEndian, recs[i].Seq)
			h.Write([]byte(recs[i].Action))
			recs[i].Hash = h.Sum(nil)
			prev = recs[i].Hash
		}
		return nil
	}
}

// auditRec is a record of org acting on a person, before chaining.
func auditRec(org, actor, action string, d time.Duration) store.AuditRecord {
	return store.AuditRecord{
		At: at(d), OrgID: org, Actor: actor, SourceIP: "192.0.2.7", Action: action,
		ObjectType: "person", ObjectID: "p1", Outcome: "ok", Severity: "info", Details: `{"k":"v\n"}`,
	}
}

// exact compares records as stored, to the nanosecond: the audit hash
// covers At in Unix nanoseconds.
var exact = cmp.Options{cmpopts.EquateEmpty()}

func listAudit(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditRecord {
	t.Helper()
	recs, err := s.ListAudit(context.Background(), f)
	must(t, err, "list audit")
	return recs
}

func testAuditAppend(t *testing.T, s store.Store) {
	ctx := context.Background()
	type head struct {
		seq  int64
		hash []byte
	}
	var heads []head
	seen := func(seq int64, hash []byte) { heads = append(heads, head{seq, hash}) }

	// An empty append only reads the head.
	must(t, s.AppendAudit(ctx, nil, testChain(seen)), "empty append")
	first := []store.AuditRecord{auditRec("acme", "u1", "person.read", 0), auditRec("acme", "u1", "person.update", time.Second), auditRec("", "system", "auth.login", 2*time.Second)}
	must(t, s.AppendAudit(ctx, first, testChain(seen)), "append 3")
	second := []store.AuditRecord{auditRec("beta", "u2", "person.read", 3*time.Second), auditRec("beta", "u2", "contact.read", 4*time.Second)}
	must(t, s.AppendAudit(ctx, second, testChain(seen)), "append 2")
	must(t, s.AppendAudit(ctx, nil, testChain(seen)), "empty append")
	want := []head{{0, nil}, {0, nil}, {3, first[2].Hash}, {5, second[1].Hash}}
	if diff := cmp.Diff(want, heads, cmp.AllowUnexported(head{}), exact); diff != "" {
		t.Errorf("heads the chain callback saw (-want +got):\n%s", diff)
	}
	all := append(append([]store.AuditRecord{}, first...), second...)
	if diff := cmp.Diff(all, listAudit(t, s, store.AuditFilter{}), exact); diff != "" {
		t.Errorf("stored records (-want +got):\n%s", diff)
	}

	// A failing chain callback stores nothing and its error comes back.
	boom := errors.New("boom")
	err := s.AppendAudit(ctx, []store.AuditRecord{auditRec("acme", "u1", "x", 0)}, func(int64, []byte, []store.AuditRecord) error { return boom })
	mustErr(t, err, boom, "append with a failing chain")
	// So does a chain that leaves a gap in seq.
	err = s.AppendAudit(ctx, []store.AuditRecord{auditRec("acme", "u1", "x", 0)}, func(head int64, h []byte, recs []store.AuditRecord) error {
		if err := testChain(nil)(head, h, recs); err != nil {
			return err
		}
		recs[0].Seq++
		return nil
	})
	if err == nil {
		t.Error("append with a gap in seq: no error")
	}
	if got := listAudit(t, s, store.AuditFilter{}); len(got) != len(all) {
		t.Errorf("%d records after failed appends, want %d", len(got), len(all))
	}
}

func testAuditConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const workers, appends = 6, 10
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range appends {
				n := 1 + (w+i)%3
				recs := make([]store.AuditRecord, n)
				for j := range recs {
					recs[j] = auditRec("acme", fmt.Sprintf("u%d", w), fmt.Sprintf("a%d.%d.%d", w, i, j), time.Duration(i)*time.Second)
				}
				if err := s.AppendAudit(ctx, recs, testChain(nil)); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	var want int64
	for w := range workers {
		must(t, errs[w], fmt.Sprintf("appender %d", w))
		for i := range appends {
			want += int64(1 + (w+i)%3)
		}
	}
	got := listAudit(t, s, store.AuditFilter{})
	if int64(len(got)) != want {
		t.Fatalf("%d records, want %d", len(got), want)
	}
	prev := make([]byte, sha256.Size)
	for i, r := range got {
		if r.Seq != int64(i)+1 {
			t.Fatalf("record %d has seq %d: want 1, 2, 3… without gaps", i, r.Seq)
		}
		if !bytes.Equal(r.PrevHash, prev) {
			t.Fatalf("record %d: prev hash is not the previous record's hash", r.Seq)
		}
		prev = r.Hash
	}
}

func testAuditFilter(t *testing.T, s store.Store) {
	ctx := context.Background()
	recs := []store.AuditRecord{
		auditRec("acme", "u1", "person.read", 0),
		auditRec("beta", "u2", "person.read", time.Second),
		auditRec("acme", "u2", "contact.read", 2*time.Second),
		auditRec("acme", "u1", "contact.read", 3*time.Second),
		auditRec("", "system", "auth.login", 4*time.Second),
	}
	must(t, s.AppendAudit(ctx, recs, testChain(nil)), "append")
	seqs := func(f store.AuditFilter) []int64 {
		var out []int64
		for _, r := range listAudit(t, s, f) {
			out = append(out, r.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    store.AuditFilter
		want []int64
	}{
		{"all", store.AuditFilter{}, []int64{1, 2, 3, 4, 5}},
		{"org", store.AuditFilter{OrgID: "acme"}, []int64{1, 3, 4}},
		{"actor", store.AuditFilter{Actor: "u2"}, []int64{2, 3}},
		{"action", store.AuditFilter{Action: "contact.read"}, []int64{3, 4}},
		{"after", store.AuditFilter{AfterSeq: 3}, []int64{4, 5}},
		{"limit", store.AuditFilter{Limit: 2}, []int64{1, 2}},
		{"after and limit", store.AuditFilter{AfterSeq: 1, Limit: 2}, []int64{2, 3}},
		{"org, actor, action", store.AuditFilter{OrgID: "acme", Actor: "u1", Action: "contact.read"}, []int64{4}},
		{"org and after", store.AuditFilter{OrgID: "acme", AfterSeq: 1, Limit: 1}, []int64{3}},
		{"none", store.AuditFilter{OrgID: "nope"}, nil},
	} {
		if diff := cmp.Diff(tc.want, seqs(tc.f), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: seqs (-want +got):\n%s", tc.name, diff)
		}
	}
	if diff := cmp.Diff(recs[3:4], listAudit(t, s, store.AuditFilter{Actor: "u1", AfterSeq: 1}), exact); diff != "" {
		t.Errorf("filtered records (-want +got):\n%s", diff)
	}
}

func testAuditCheckpoints(t *testing.T, s store.Store) {
	ctx := context.Background()
	cps, err := s.ListAuditCheckpoints(ctx)
	must(t, err, "list empty")
	if len(cps) != 0 {
		t.Fatalf("checkpoints of an empty log: %v", cps)
	}
	recs := []store.AuditRecord{auditRec("acme", "u1", "a", 0), auditRec("acme", "u1", "b", 0), auditRec("acme", "u1", "c", 0), auditRec("acme", "u1", "d", 0)}
	must(t, s.AppendAudit(ctx, recs, testChain(nil)), "append")
	c4 := store.AuditCheckpoint{Seq: 4, At: at(time.Minute), Hash: recs[3].Hash, Signature: bytes.Repeat([]byte{4}, 64)}
	c2 := store.AuditCheckpoint{Seq: 2, At: at(time.Second), Hash: recs[1].Hash, Signature: bytes.Repeat([]byte{2}, 64)}
	must(t, s.PutAuditCheckpoint(ctx, c4), "put 4")
	must(t, s.PutAuditCheckpoint(ctx, c2), "put 2")
	cps, err = s.ListAuditCheckpoints(ctx)
	must(t, err, "list")
	if diff := cmp.Diff([]store.AuditCheckpoint{c2, c4}, cps, exact); diff != "" {
		t.Errorf("checkpoints (-want +got):\n%s", diff)
	}
	dup := c2
	dup.Signature = bytes.Repeat([]byte{9}, 64)
	mustErr(t, s.PutAuditCheckpoint(ctx, dup), store.ErrConflict, "second checkpoint at 2")
	mustErr(t, s.PutAuditCheckpoint(ctx, store.AuditCheckpoint{Seq: 99, At: at(0), Hash: recs[0].Hash, Signature: c2.Signature}), store.ErrNotFound, "checkpoint of no record")
}
