package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/internal/audit"
	"vigil/internal/backup"
	"vigil/internal/store"
	"vigil/internal/store/sqlite"
)

// selfSigned writes a certificate for 127.0.0.1 and its key; the
// certificate is its own CA (the --to-ca / --from-ca file).
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backup host"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	return certFile, keyFile
}

// startReceiver runs `vigil backup receive` on 127.0.0.1:0 until the test
// ends and returns its base URL.
func startReceiver(t *testing.T, dir, cert, key, tokenFile string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"backup", "receive", "--dir", dir, "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--token-file", tokenFile},
			func(string) string { return "" }, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("backup receive exited %d", code)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("backup receive: %v", err)
	}
	go io.Copy(io.Discard, pr)
	i := strings.Index(line, "https://")
	if i < 0 {
		t.Fatalf("backup receive said %q", line)
	}
	return strings.TrimSpace(line[i:])
}

// sqliteDataDir makes a data directory with a SQLite store, an org, a
// person with the canary name and a signed audit chain.
func sqliteDataDir(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, storeFile), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreatePerson(ctx, store.Person{ID: "p1", OrgID: "acme", Kind: store.PersonWorker, Name: backupCanary, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	key, err := audit.LoadOrCreateKey(filepath.Join(dir, audit.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	al := audit.New(st, key, slog.New(slog.DiscardHandler), nil, audit.Config{CheckpointEvery: 2})
	for i := range 5 {
		if err := al.Record(ctx, audit.Entry{OrgID: "acme", Actor: "u1", Action: "person.read", ObjectID: fmt.Sprint(i), Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBackupRemoteTarget: `vigil backup --to https://…` uploads through
// `vigil backup receive` over verified TLS with create-only PUTs,
// `vigil restore --from https://…` reads it back, verifies and restores;
// the server side needs no delete right, the host's `vigil backup prune`
// applies retention; wrong tokens and untrusted certificates fail.
func TestBackupRemoteTarget(t *testing.T) {
	dataDir := sqliteDataDir(t)
	keys := backupKeys(t)
	cert, key := selfSigned(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("a-long-backup-token-9f2c\n"), 0o600)
	hostDir := filepath.Join(t.TempDir(), "host")
	base := startReceiver(t, hostDir, cert, key, tokenFile)

	backupArgs := []string{"backup", "--data-dir", dataDir, "--to", base, "--to-ca", cert, "--token-file", tokenFile,
		"--recipient", filepath.Join(keys, backup.RecipientFile), "--signing-key", filepath.Join(keys, backup.SigningKeyFile)}
	code, out, errs := cli(t, nil, backupArgs...)
	if code != 0 || !strings.Contains(out, base) || !strings.Contains(out, "people 1") {
		t.Fatalf("backup to %s: %d\n%s%s", base, code, out, errs)
	}
	loc := strings.Fields(strings.TrimPrefix(out, "backup "))[0]
	loc = strings.TrimSuffix(loc, ":")
	stored, _ := filepath.Glob(filepath.Join(hostDir, "vigil-*", backup.SignatureFile))
	if len(stored) != 1 {
		t.Fatalf("on the host: %v", stored)
	}
	if b := dirBytes(t, filepath.Dir(stored[0])); strings.Contains(string(b), backupCanary) {
		t.Error("the canary name reached the backup host in plaintext")
	}
	// Nothing is staged on the server's side after the upload.
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "vigil-backup-*")); len(left) != 0 {
		t.Logf("staging dirs in %s (may be other tests'): %v", os.TempDir(), left)
	}

	restoreArgs := func(target string, extra ...string) []string {
		return append([]string{"restore", "--from", loc, "--to", target, "--identity", filepath.Join(keys, backup.IdentityFile),
			"--verify-key", filepath.Join(keys, backup.VerifyKeyFile), "--from-ca", cert, "--token-file", tokenFile}, extra...)
	}
	target := filepath.Join(t.TempDir(), "restored")
	code, out, errs = cli(t, nil, restoreArgs(target)...)
	if code != 0 || !strings.Contains(out, "rows match the manifest") || !strings.Contains(out, "audit log intact: 5 records, 2 checkpoints") {
		t.Fatalf("restore from %s: %d\n%s%s", loc, code, out, errs)
	}

	// Refusals.
	badToken := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(badToken, []byte("not-the-backup-token-0000"), 0o600)
	other := backupKeys(t)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"backup with a wrong token", append(append([]string{}, backupArgs[:7]...), append([]string{"--token-file", badToken}, backupArgs[9:]...)...), "401"},
		{"backup without the private CA", append(append([]string{}, backupArgs[:5]...), backupArgs[7:]...), "certificate"},
		{"backup to plain http", append(append([]string{}, backupArgs[:3]...), append([]string{"--to", "http" + strings.TrimPrefix(base, "https")}, backupArgs[5:]...)...), "want https://"},
		{"restore with a wrong token", restoreArgs(filepath.Join(t.TempDir(), "x"), "--token-file", badToken), "401"},
		{"restore with another verify key", restoreArgs(filepath.Join(t.TempDir(), "x"), "--verify-key", filepath.Join(other, backup.VerifyKeyFile)), "signature does not verify"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := cli(t, nil, c.args...)
			if code == 0 || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d, want an error naming %q\n%s%s", code, c.want, out, errs)
			}
			if strings.Contains(errs, "a-long-backup-token") || strings.Contains(errs, "not-the-backup-token") {
				t.Errorf("the token is in the error: %s", errs)
			}
		})
	}

	// Retention on the host: a second backup, then keep one daily.
	if code, out, errs := cli(t, nil, backupArgs...); code != 0 {
		t.Fatalf("second backup: %d %s%s", code, out, errs)
	}
	code, out, errs = cli(t, nil, "backup", "prune", "--dir", hostDir, "--keep-daily", "1", "--dry-run")
	if code != 0 || !strings.Contains(out, "kept 1 backups, would remove 1") {
		t.Fatalf("prune --dry-run: %d %s%s", code, out, errs)
	}
	code, out, errs = cli(t, nil, "backup", "prune", "--dir", hostDir, "--keep-daily", "1")
	if code != 0 || !strings.Contains(out, "kept 1 backups, removed 1") {
		t.Fatalf("prune: %d %s%s", code, out, errs)
	}
	if left, _ := filepath.Glob(filepath.Join(hostDir, "vigil-*")); len(left) != 1 {
		t.Errorf("after prune: %v", left)
	}
	if code, _, errs := cli(t, nil, "backup", "prune", "--dir", hostDir); code != 2 || !strings.Contains(errs, "--keep-daily") {
		t.Errorf("prune without a policy: %d %s", code, errs)
	}
	if code, _, errs := cli(t, nil, "backup", "receive", "--dir", hostDir); code != 2 || !strings.Contains(errs, "--listen is required") {
		t.Errorf("receive without --listen: %d %s", code, errs)
	}
}
