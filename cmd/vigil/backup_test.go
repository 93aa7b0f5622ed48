package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/app"
	"vigil/internal/audit"
	"vigil/internal/backup"
	"vigil/internal/backup/snapshot"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
	"vigil/internal/store/storetest"
	"vigil/internal/vigiltest"
)

// backupCanary is a person's name: it must never appear in a backup's
// files in plaintext, and must read back after a restore.
const backupCanary = "Zelda-CANARY-7f3a Quenby"

// backupKeys runs `vigil backup keygen` into a fresh directory.
func backupKeys(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	if code, out, errs := cli(t, nil, "backup", "keygen", "--out", dir); code != 0 || !strings.Contains(out, "age1") {
		t.Fatalf("backup keygen: %d %s %s", code, out, errs)
	}
	return dir
}

// seedRunning adds an org, a person with the canary name, a device, an
// SOS alert (through the HTTPS device API) and audit records with signed
// checkpoints to a running app; it returns the alert.
func seedRunning(t *testing.T, a *app.App, dataDir string) store.Alert {
	t.Helper()
	ctx := context.Background()
	st := a.Store()
	now := time.Now().UTC()
	if err := st.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme Care", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreatePerson(ctx, store.Person{ID: "p1", OrgID: "acme", Kind: store.PersonWorker, Name: backupCanary, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	c, err := a.Devices().Register(ctx, "acme", "pendant")
	if err != nil {
		t.Fatal(err)
	}
	devID, secret := c.DeviceID, c.Secret
	if err := st.AssignDevice(ctx, devID, "p1"); err != nil {
		t.Fatal(err)
	}
	key, err := audit.LoadKey(filepath.Join(dataDir, audit.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	al := audit.New(st, key, slog.New(slog.DiscardHandler), nil, audit.Config{CheckpointEvery: 3})
	for i := range 7 {
		if err := al.Record(ctx, audit.Entry{OrgID: "acme", Actor: "u1", Action: "person.read", ObjectType: "person", ObjectID: fmt.Sprintf("p%d", i), Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	body := fmt.Sprintf(`{"events":[{"v":1,"id":"sos-backup","ts":%q,"type":"button","button":{"kind":"sos"},"position":{"lat":53.8,"lon":-1.55,"accuracy_m":8}}]}`, now.Add(-time.Second).Format(time.RFC3339Nano))
	req, _ := http.NewRequest("POST", "https://"+a.Addr("https")+"/api/v1/devices/"+devID+"/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(t, a)}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST SOS: %d %s", resp.StatusCode, b)
	}
	var alerts []store.Alert
	deadline := time.Now().Add(15 * time.Second)
	for len(alerts) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no alert for the SOS within 15s")
		}
		time.Sleep(20 * time.Millisecond)
		alerts, err = st.ListAlerts(ctx, store.AlertFilter{OrgID: "acme"})
		if err != nil {
			t.Fatal(err)
		}
	}
	return alerts[0]
}

// TestBackupRestoreDrill is the restore drill (security requirement 36):
// back up a running server, restore into an empty directory (signature,
// checksums, schema, row counts and the audit chain verified), start a
// new server on it and find the same data; the canary name is nowhere in
// the backup in plaintext; damaged backups and unsafe targets are refused.
func TestBackupRestoreDrill(t *testing.T) {
	cfg := vigiltest.Config(t)
	a := vigiltest.StartApp(t, cfg)
	alert := seedRunning(t, a, cfg.DataDir)
	keys := backupKeys(t)
	to := filepath.Join(t.TempDir(), "backups")
	args := []string{"backup", "--data-dir", cfg.DataDir, "--to", to, "--recipient", filepath.Join(keys, backup.RecipientFile), "--signing-key", filepath.Join(keys, backup.SigningKeyFile)}

	// Online: the server keeps running (and writing) during the backup.
	code, out, errs := cli(t, nil, args...)
	if code != 0 || !strings.Contains(out, "orgs 1, people 1, devices 1, alerts 1") {
		t.Fatalf("backup: %d\n%s%s", code, out, errs)
	}
	bdirs, _ := filepath.Glob(filepath.Join(to, "vigil-*"))
	if len(bdirs) != 1 {
		t.Fatalf("backup dirs %v", bdirs)
	}
	bdir := bdirs[0]
	// A second backup, taken while audit records are appended as fast as
	// they go, is a new directory; the first is untouched.
	first := dirBytes(t, bdir)
	stop, done, started := make(chan struct{}), make(chan int), make(chan struct{})
	go func() {
		n := 0
		defer func() { done <- n }()
		defer func() {
			if n < 5 {
				close(started)
			}
		}()
		key, err := audit.LoadKey(filepath.Join(cfg.DataDir, audit.KeyFileName))
		if err != nil {
			t.Error(err)
			return
		}
		al := audit.New(a.Store(), key, slog.New(slog.DiscardHandler), nil, audit.Config{CheckpointEvery: 5})
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := al.Record(context.Background(), audit.Entry{OrgID: "acme", Actor: "u2", Action: "person.read", ObjectID: "p1", Outcome: audit.OutcomeOK}); err != nil {
				t.Error(err)
				return
			}
			if n++; n == 5 {
				close(started)
			}
		}
	}()
	<-started
	code, out, errs = cli(t, nil, args...)
	close(stop)
	written := <-done
	if code != 0 {
		t.Fatalf("second backup: %s", errs)
	}
	t.Logf("%d audit records appended around the second backup: %s", written, strings.TrimSpace(out))
	var inBackup int
	if i := strings.Index(out, "audit_log "); i < 0 {
		t.Errorf("no audit_log count in %q", out)
	} else if _, err := fmt.Sscan(out[i+len("audit_log "):], &inBackup); err != nil || inBackup < 7+5 {
		t.Errorf("the second backup has %d audit records (%v), want at least the 12 written before it", inBackup, err)
	}
	bd, _ := filepath.Glob(filepath.Join(to, "vigil-*"))
	if len(bd) != 2 {
		t.Fatalf("after two backups: %v", bd)
	}
	second := bd[0]
	if second == bdir {
		second = bd[1]
	}
	if !bytes.Equal(first, dirBytes(t, bdir)) {
		t.Error("the second backup changed the first")
	}
	if bytes.Contains(first, []byte(backupCanary)) || bytes.Contains(first, []byte("CANARY-7f3a")) {
		t.Error("the canary name is in the backup in plaintext")
	}
	// Nothing of the plaintext snapshot is left in the data dir.
	if left, _ := filepath.Glob(filepath.Join(cfg.DataDir, ".backup-*")); len(left) != 0 {
		t.Errorf("snapshot temp dirs left: %v", left)
	}

	restoreArgs := func(from, target string) []string {
		return []string{"restore", "--from", from, "--to", target, "--identity", filepath.Join(keys, backup.IdentityFile), "--verify-key", filepath.Join(keys, backup.VerifyKeyFile)}
	}
	target := filepath.Join(t.TempDir(), "restored")
	code, out, errs = cli(t, nil, restoreArgs(bdir, target)...)
	if code != 0 || !strings.Contains(out, "signature and") || !strings.Contains(out, "rows match the manifest") || !strings.Contains(out, "audit log intact: 7 records, 2 checkpoints") {
		t.Fatalf("restore: %d\n%s%s", code, out, errs)
	}

	// The backup taken under writes is a consistent snapshot: its row
	// counts match and its audit chain verifies.
	code, out, errs = cli(t, nil, restoreArgs(second, filepath.Join(t.TempDir(), "restored2"))...)
	if code != 0 || !strings.Contains(out, "rows match the manifest") || !strings.Contains(out, "audit log intact") {
		t.Fatalf("restore of the backup taken under writes: %d\n%s%s", code, out, errs)
	}

	// A new server on the restored directory has the same data.
	cfg2 := vigiltest.Config(t)
	cfg2.DataDir = target
	cfg2.Keys.KEKFile = cfg.KEKPath() // the install's key-encryption key, kept outside data dir and backups
	b := vigiltest.StartApp(t, cfg2)
	ctx := context.Background()
	p, err := b.Store().GetPerson(ctx, "p1")
	if err != nil || p.Name != backupCanary {
		t.Errorf("restored person: %v %q", err, p.Name)
	}
	got, err := b.Store().GetAlert(ctx, alert.ID)
	if err != nil || got.Kind != alert.Kind || got.DeviceID != alert.DeviceID || got.PersonID != "p1" {
		t.Errorf("restored alert: %v %+v", err, got)
	}
	if !bytes.Equal(b.CACertPEM(), a.CACertPEM()) {
		t.Error("the restored server has another CA: enrolled devices would not trust it")
	}
	key, err := audit.LoadKey(filepath.Join(cfg.DataDir, audit.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, b.Store(), key.Public().(ed25519.PublicKey))
	if err != nil || !rep.OK() || rep.Records < 7 {
		t.Errorf("audit on the restored server: %v %+v", err, rep)
	}

	// Refusals, each naming what is wrong; a refused restore writes nothing.
	other := backupKeys(t)
	damaged := copyDir(t, bdir)
	damagePart(t, damaged, "vigil.db", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b })
	truncated := copyDir(t, bdir)
	damagePart(t, truncated, "tls/ca.key", func(b []byte) []byte { return b[:len(b)-7] })
	missing := copyDir(t, bdir)
	damagePart(t, missing, audit.KeyFileName, nil)
	noSig := copyDir(t, bdir)
	if err := os.Remove(filepath.Join(noSig, backup.SignatureFile)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"flipped byte", restoreArgs(damaged, filepath.Join(t.TempDir(), "x")), 1, []string{"part vigil.db", "checksum mismatch"}},
		{"truncated part", restoreArgs(truncated, filepath.Join(t.TempDir(), "x")), 1, []string{"part tls/ca.key", "truncated"}},
		{"missing part", restoreArgs(missing, filepath.Join(t.TempDir(), "x")), 1, []string{"part " + audit.KeyFileName, "missing"}},
		{"no manifest.sig", restoreArgs(noSig, filepath.Join(t.TempDir(), "x")), 1, []string{backup.SignatureFile, "incomplete"}},
		{"another verify key", []string{"restore", "--from", bdir, "--to", filepath.Join(t.TempDir(), "x"), "--identity", filepath.Join(keys, backup.IdentityFile), "--verify-key", filepath.Join(other, backup.VerifyKeyFile)}, 1, []string{"signature does not verify"}},
		{"another identity (backup without the key)", []string{"restore", "--from", bdir, "--to", filepath.Join(t.TempDir(), "x"), "--identity", filepath.Join(other, backup.IdentityFile), "--verify-key", filepath.Join(keys, backup.VerifyKeyFile)}, 1, []string{"part vigil.db", "identity did not match"}},
		{"non-empty target", restoreArgs(bdir, target), 1, []string{"not empty"}},
		{"no identity", []string{"restore", "--from", bdir, "--to", filepath.Join(t.TempDir(), "x")}, 2, []string{"--identity is required"}},
		{"backup into the data dir", []string{"backup", "--data-dir", cfg.DataDir, "--to", filepath.Join(cfg.DataDir, "b"), "--recipient", filepath.Join(keys, backup.RecipientFile), "--signing-key", filepath.Join(keys, backup.SigningKeyFile)}, 2, []string{"--to must be outside the data directory"}},
		{"signing key in the data dir", []string{"backup", "--data-dir", cfg.DataDir, "--to", to, "--recipient", filepath.Join(keys, backup.RecipientFile), "--signing-key", filepath.Join(cfg.DataDir, "k.key")}, 2, []string{"--signing-key must be outside the data directory"}},
		{"no recipient", []string{"backup", "--data-dir", cfg.DataDir, "--to", to, "--signing-key", filepath.Join(keys, backup.SigningKeyFile)}, 2, []string{"--recipient"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := cli(t, nil, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, c.code, out, errs)
			}
			for _, w := range c.stderr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q lacks %q", errs, w)
				}
			}
			if c.args[0] == "restore" && c.args[4] != target {
				if _, err := os.Stat(c.args[4]); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("a refused restore created its target: %v", err)
				}
			}
		})
	}
}

// TestBackupDataDirFiles: the parts besides the store snapshot are every
// regular file of the data dir except the live store, leftover snapshot
// temp dirs and, unless asked, JetStream.
func TestBackupDataDirFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"vigil.db", "vigil.db-wal", "vigil.db-shm", "seal.key", "session.key", "audit-signing.key", "tls/ca.key", "tls/ca.pem", "jetstream/jetstream/$G/streams/EVENTS/msgs/1.blk", ".backup-123/vigil.db"} {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	names := func(withJS bool) string {
		parts, err := snapshot.DataDirFiles(dir, filepath.Join(dir, "vigil.db"), withJS)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, p := range parts {
			s = append(s, p.Name)
		}
		return strings.Join(s, " ")
	}
	if got, want := names(false), "audit-signing.key seal.key session.key tls/ca.key tls/ca.pem"; got != want {
		t.Errorf("parts %q, want %q", got, want)
	}
	if got, want := names(true), "audit-signing.key jetstream/jetstream/$G/streams/EVENTS/msgs/1.blk seal.key session.key tls/ca.key tls/ca.pem"; got != want {
		t.Errorf("parts with --jetstream %q, want %q", got, want)
	}
}

// dirBytes is every file of dir, concatenated in name order.
func dirBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		all = append(append(all, e.Name()...), b...)
	}
	return all
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// damagePart rewrites the named part's encrypted file with damage(its
// bytes), or removes it when damage is nil.
func damagePart(t *testing.T, dir, name string, damage func([]byte) []byte) {
	t.Helper()
	mb, err := os.ReadFile(filepath.Join(dir, backup.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup.ParseManifest(mb)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Parts {
		if p.Name != name {
			continue
		}
		f := filepath.Join(dir, p.File)
		if damage == nil {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
			return
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, damage(b), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no part %s", name)
}

// BenchmarkBackupRestore times `vigil backup` and `vigil restore` (with
// its verification) on a store of VIGIL_BENCH_POSITIONS positions
// (default 1,000,000) and 1,000 audit records:
//
//	go test ./cmd/vigil -run '^$' -bench BackupRestore -benchtime 1x -v
func BenchmarkBackupRestore(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("VIGIL_BENCH_POSITIONS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			b.Fatalf("VIGIL_BENCH_POSITIONS: %v", err)
		}
	}
	ctx := context.Background()
	dataDir := b.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "vigil.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		b.Fatal(err)
	}
	storetest.BenchSeed(b, st)
	const batch = 5000
	for i := 0; i < n; i += batch {
		if _, err := st.ApplyEvents(ctx, storetest.BenchEvents(i, min(batch, n-i))); err != nil {
			b.Fatal(err)
		}
	}
	key, err := audit.LoadOrCreateKey(filepath.Join(dataDir, audit.KeyFileName))
	if err != nil {
		b.Fatal(err)
	}
	al := audit.New(st, key, slog.New(slog.DiscardHandler), nil, audit.Config{CheckpointEvery: 100})
	for i := range 1000 {
		if err := al.Record(ctx, audit.Entry{OrgID: "bench", Actor: "u1", Action: "person.read", ObjectID: fmt.Sprint(i), Outcome: audit.OutcomeOK}); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	keys := filepath.Join(b.TempDir(), "keys")
	if _, err := backup.GenerateKeys(keys); err != nil {
		b.Fatal(err)
	}
	to := filepath.Join(b.TempDir(), "backups")
	runOK := func(args ...string) string {
		var out, errs bytes.Buffer
		if code := run(ctx, args, func(string) string { return "" }, &out, &errs); code != 0 {
			b.Fatalf("vigil %s: %d %s", args[0], code, errs.String())
		}
		return out.String()
	}
	var last string
	b.Run("backup", func(b *testing.B) {
		for range b.N {
			last = runOK("backup", "--data-dir", dataDir, "--to", to, "--recipient", filepath.Join(keys, backup.RecipientFile), "--signing-key", filepath.Join(keys, backup.SigningKeyFile))
		}
		b.ReportMetric(float64(n), "positions")
	})
	b.Log(strings.TrimSpace(last))
	bdirs, _ := filepath.Glob(filepath.Join(to, "vigil-*"))
	if len(bdirs) == 0 {
		b.Fatal("no backup")
	}
	b.Run("restore", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			target := filepath.Join(b.TempDir(), "restored")
			b.StartTimer()
			last = runOK("restore", "--from", bdirs[0], "--to", target, "--identity", filepath.Join(keys, backup.IdentityFile), "--verify-key", filepath.Join(keys, backup.VerifyKeyFile))
		}
		b.ReportMetric(float64(n), "positions")
	})
	b.Log(strings.TrimSpace(last))
}
