package main

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vigil/internal/audit"
	"vigil/internal/store/sqlite"
)

// seedAudit records n entries of org acme (every third of org beta) in the
// data dir's store, signing a checkpoint every 4, and returns the anchor
// lines the log got.
func seedAudit(t *testing.T, dir string, n int) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := audit.LoadOrCreateKey(filepath.Join(dir, audit.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	l := audit.New(st, key, slog.New(slog.NewTextHandler(&logs, nil)), nil, audit.Config{CheckpointEvery: 4})
	for i := range n {
		org := "acme"
		if i%3 == 2 {
			org = "beta"
		}
		e := audit.Entry{OrgID: org, Actor: "u1", Action: "person.read", ObjectType: "person", ObjectID: fmt.Sprintf("p%d", i), Outcome: audit.OutcomeOK}
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	return logs.String()
}

func TestCLIAuditVerify(t *testing.T) {
	dir := t.TempDir()
	logs := seedAudit(t, dir, 10)

	code, out, errs := cli(t, nil, "audit", "verify", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "checked 10 records, 2 checkpoints (last at seq 8)") || !strings.Contains(out, "intact") {
		t.Fatalf("verify of an intact log: %d\n%s%s", code, out, errs)
	}
	var anchorArgs []string
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		anchorArgs = append(anchorArgs, "--anchor", line)
	}
	if code, out, errs := cli(t, nil, append([]string{"audit", "verify", "--data-dir", dir}, anchorArgs...)...); code != 0 || !strings.Contains(out, "2 anchors") {
		t.Fatalf("verify with the log's anchors: %d\n%s%s", code, out, errs)
	}

	// Another key's public half: the first checkpoint fails its signature.
	other, _, _ := ed25519.GenerateKey(nil)
	if code, _, errs := cli(t, nil, "audit", "verify", "--data-dir", dir, "--public-key", hex.EncodeToString(other)); code != 1 || !strings.Contains(errs, "broken at seq 4") || !strings.Contains(errs, "signature") {
		t.Fatalf("verify with another key: %d %s", code, errs)
	}

	db, err := sql.Open("sqlite", filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_log SET object_id = 'p99' WHERE seq = 6`); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli(t, nil, "audit", "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(errs, "broken at seq 6") || !strings.Contains(errs, "does not match its hash") {
		t.Fatalf("verify of an edited log: %d\n%s%s", code, out, errs)
	}
	if _, err := db.Exec(`UPDATE audit_log SET object_id = 'p5' WHERE seq = 6`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := cli(t, nil, "audit", "verify", "--data-dir", dir); code != 1 || !strings.Contains(errs, "broken at seq 3") || !strings.Contains(errs, "missing") {
		t.Fatalf("verify of a log with a deleted row: %d\n%s%s", code, out, errs)
	}

	if code, _, errs := cli(t, nil, "audit", "verify", "--data-dir", dir, "--public-key", "zz"); code != 2 || !strings.Contains(errs, "--public-key") {
		t.Fatalf("verify with a malformed key: %d %s", code, errs)
	}
	if code, _, errs := cli(t, nil, "audit", "verify", "--data-dir", dir, "--anchor", "nonsense"); code == 0 || !strings.Contains(errs, "anchor") {
		t.Fatalf("verify with a malformed anchor: %d %s", code, errs)
	}

	// A key others can read is refused.
	if err := os.Chmod(filepath.Join(dir, audit.KeyFileName), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli(t, nil, "audit", "verify", "--data-dir", dir); code != 1 || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("verify with a world-readable key: %d %s", code, errs)
	}
}

func TestCLIAuditExport(t *testing.T) {
	dir := t.TempDir()
	seedAudit(t, dir, 9)
	code, out, errs := cli(t, nil, "audit", "export", "--data-dir", dir, "--org", "acme", "--since-seq", "2")
	if code != 0 {
		t.Fatalf("export: %d %s", code, errs)
	}
	var seqs []int64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct {
			Seq   int64  `json:"seq"`
			OrgID string `json:"org_id"`
			Hash  string `json:"hash"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.OrgID != "acme" || len(r.Hash) != 64 {
			t.Fatalf("export line %q: %+v %v", line, r, err)
		}
		seqs = append(seqs, r.Seq)
	}
	if fmt.Sprint(seqs) != "[4 5 7 8]" {
		t.Errorf("exported seqs %v, want acme's after 2: [4 5 7 8]", seqs)
	}
	if code, _, errs := cli(t, nil, "audit", "export", "--data-dir", dir, "stray"); code != 2 {
		t.Errorf("export with an argument: %d %s", code, errs)
	}
	if code, _, errs := cli(t, nil, "audit", "nope"); code != 2 || !strings.Contains(errs, "verify") {
		t.Errorf("unknown subcommand: %d %s", code, errs)
	}
}
