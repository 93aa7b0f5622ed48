package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"vigil/internal/app"
	"vigil/internal/backup"
	"vigil/internal/backup/remote"
	"vigil/internal/backup/snapshot"
	"vigil/internal/config"
	"vigil/internal/store/encrypted"
)

const (
	backupUsage = "vigil backup --to DIR|https://HOST/PATH/ --recipient AGE1…|FILE --signing-key FILE [--to-ca FILE] [--token-file FILE] [--jetstream] [--store postgres://…]" +
		" | vigil backup keygen --out DIR" +
		" | vigil backup receive --dir DIR --listen ADDR --tls-cert FILE --tls-key FILE --token-file FILE" +
		" | vigil backup prune --dir DIR --keep-daily N --keep-weekly M [--dry-run]"
	restoreUsage = "vigil restore --from BACKUP_DIR|https://HOST/PATH/vigil-…/ --to EMPTY_DATA_DIR --identity AGE_KEY_FILE --verify-key PUB_FILE [--store postgres://…EMPTY SCHEMA | --store-file FILE] [--from-ca FILE] [--token-file FILE] [--kek-file FILE]"
	// Environment fallbacks for the backup flags.
	envBackupRecipient  = "VIGIL_BACKUP_RECIPIENT"
	envBackupSigningKey = "VIGIL_BACKUP_SIGNING_KEY_FILE"
	envBackupTokenFile  = "VIGIL_BACKUP_TOKEN_FILE"
)

// storeFile is the SQLite store's name inside a data directory and a backup.
const storeFile = snapshot.StoreFile

// runBackup makes an encrypted, signed backup of the store and the data
// directory (keygen: makes the keys it needs; receive: the append-only
// target; prune: the target host's retention).
func runBackup(ctx context.Context, e env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "keygen":
			return runBackupKeygen(e, args[1:])
		case "receive":
			return runBackupReceive(ctx, e, args[1:])
		case "prune":
			return runBackupPrune(e, args[1:])
		}
	}
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	to := fs.String("to", "", "the backup target: a `dir` (each backup is a new directory in it) or https://host/path/ of 'vigil backup receive' (create-only uploads); nothing there is ever overwritten or deleted (default backup.to)")
	toCA := fs.String("to-ca", "", "PEM `file` of the CA of an https target's certificate (default backup.to_ca)")
	tokenFile := fs.String("token-file", "", "`file` holding the bearer token of an https target (env "+envBackupTokenFile+", or backup.token_file)")
	recipient := fs.String("recipient", "", "the age recipient (age1…, or a file holding it) the backup is encrypted to (env "+envBackupRecipient+", or backup.recipient_file)")
	signingKey := fs.String("signing-key", "", "the Ed25519 backup signing key `file` from 'vigil backup keygen', outside the data directory (env "+envBackupSigningKey+", or backup.signing_key_file)")
	withJS := fs.Bool("jetstream", false, "also copy the JetStream directory (consistent only while the server is stopped; see docs/backup.md)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("vigil backup: unexpected argument %q; usage: %s", fs.Arg(0), backupUsage)
	}
	or := func(p *string, vals ...string) {
		for _, v := range vals {
			if *p == "" {
				*p = v
			}
		}
	}
	or(recipient, e.getenv(envBackupRecipient), cfg.Backup.RecipientFile)
	or(signingKey, cfg.Backup.SigningKeyFile)
	or(to, cfg.Backup.To)
	or(toCA, cfg.Backup.ToCA)
	or(tokenFile, e.getenv(envBackupTokenFile))
	*withJS = *withJS || cfg.Backup.WithJetStream
	switch {
	case *to == "":
		return usagef("vigil backup: --to is required; usage: %s", backupUsage)
	case *recipient == "":
		return usagef("vigil backup: --recipient (or %s) is required; usage: %s", envBackupRecipient, backupUsage)
	case *signingKey == "":
		return usagef("vigil backup: --signing-key (or %s) is required; usage: %s", envBackupSigningKey, backupUsage)
	}
	if !remote.IsURL(*to) && inside(cfg.DataDir, *to) {
		return usagef("vigil backup: --to must be outside the data directory %s (a backup next to the data does not survive its loss)", cfg.DataDir)
	}
	if inside(cfg.DataDir, *signingKey) {
		return usagef("vigil backup: --signing-key must be outside the data directory %s (whoever takes the data dir could sign forged backups)", cfg.DataDir)
	}
	rcpt, err := backup.ParseRecipient(*recipient)
	if err != nil {
		return usagef("vigil backup: --recipient: %v", err)
	}
	key, err := backup.LoadSigningKey(*signingKey)
	if err != nil {
		return fmt.Errorf("--signing-key: %w", err)
	}
	var client *remote.Client
	if remote.IsURL(*to) {
		token := cfg.Backup.Token.Reveal()
		if *tokenFile != "" {
			if token, err = readSecretFile(*tokenFile); err != nil {
				return usagef("vigil backup: --token-file: %v", err)
			}
		}
		ca, err := readOptional(*toCA)
		if err != nil {
			return usagef("vigil backup: --to-ca: %v", err)
		}
		if client, err = remote.NewClient(*to, ca, token); err != nil {
			return usagef("vigil backup: --to: %v", err)
		}
	}
	kind, dsn := cfg.StoreKind()
	start := time.Now()
	var up snapshot.Uploader
	if client != nil {
		up = client
	}
	dir, m, err := snapshot.TakeTo(ctx, snapshot.Source{DataDir: cfg.DataDir, Kind: kind, DSN: dsn, JetStream: *withJS, VigilVersion: vigilVersion()}, *to, up, start, rcpt, key)
	if err != nil {
		return err
	}
	var size int64
	for _, p := range m.Parts {
		size += p.Size
	}
	fmt.Fprintf(e.stdout, "backup %s: %s store, %d parts, %d bytes encrypted, schema %d, %s in %v\n", dir, m.Store, len(m.Parts), size, m.SchemaVersion, countSummary(m.Counts), time.Since(start).Round(time.Millisecond))
	return nil
}

func runBackupKeygen(e env, args []string) error {
	fs := flag.NewFlagSet("backup keygen", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	out := fs.String("out", "", "the `dir` for the keys: NOT the data directory; move "+backup.IdentityFile+" offline afterwards")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return usagef("vigil backup keygen: --out is required; usage: %s", backupUsage)
	}
	kf, err := backup.GenerateKeys(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "signing key  %s (0600: for 'vigil backup --signing-key', keep it outside the data directory)\n", kf.SigningKey)
	fmt.Fprintf(e.stdout, "verify key   %s (for 'vigil restore --verify-key')\n", kf.VerifyKey)
	fmt.Fprintf(e.stdout, "identity     %s (0600: decrypts backups; store it offline, not on the server)\n", kf.Identity)
	fmt.Fprintf(e.stdout, "recipient    %s (%s)\n", kf.RecipientText, kf.Recipient)
	return nil
}

// runBackupReceive serves the append-only backup target on the backup
// host until ctx ends.
func runBackupReceive(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("backup receive", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	dir := fs.String("dir", "", "the `dir` backups are stored in (one vigil-… directory each)")
	listen := fs.String("listen", "", "HTTPS listen `address`, e.g. :8443")
	cert := fs.String("tls-cert", "", "TLS certificate `file` (PEM, chain first)")
	keyFile := fs.String("tls-key", "", "TLS private key `file` (PEM)")
	tokenFile := fs.String("token-file", "", "`file` holding the bearer token uploads and reads must present (at least 16 characters)")
	maxPart := fs.Int64("max-part-bytes", remote.DefaultMaxPart, "largest file accepted, in `bytes`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"--dir", *dir}, {"--listen", *listen}, {"--tls-cert", *cert}, {"--tls-key", *keyFile}, {"--token-file", *tokenFile}} {
		if f.v == "" {
			return usagef("vigil backup receive: %s is required; usage: %s", f.name, backupUsage)
		}
	}
	if fs.NArg() > 0 {
		return usagef("vigil backup receive: unexpected argument %q", fs.Arg(0))
	}
	token, err := readSecretFile(*tokenFile)
	if err != nil {
		return usagef("vigil backup receive: --token-file: %v", err)
	}
	pair, err := tls.LoadX509KeyPair(*cert, *keyFile)
	if err != nil {
		return usagef("vigil backup receive: --tls-cert/--tls-key: %v", err)
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	rv, err := remote.NewReceiver(*dir, token, *maxPart, log)
	if err != nil {
		return usagef("vigil backup receive: %v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("backup receive: listen: %w", err)
	}
	srv := &http.Server{Handler: rv, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}},
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	fmt.Fprintf(e.stdout, "receiving backups into %s on https://%s/\n", *dir, ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-done:
		return fmt.Errorf("backup receive: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// runBackupPrune applies the retention policy on the backup host.
func runBackupPrune(e env, args []string) error {
	fs := flag.NewFlagSet("backup prune", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	dir := fs.String("dir", "", "the backup `dir` (on the backup host, run by its operator)")
	daily := fs.Int("keep-daily", 0, "keep the newest backup of each of the last `n` days that have one")
	weekly := fs.Int("keep-weekly", 0, "keep the newest backup of each of the last `n` ISO weeks that have one")
	dry := fs.Bool("dry-run", false, "say what would be removed, remove nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return usagef("vigil backup prune: --dir is required; usage: %s", backupUsage)
	}
	if *daily < 0 || *weekly < 0 || *daily+*weekly == 0 {
		return usagef("vigil backup prune: --keep-daily and --keep-weekly: keep at least one backup (non-negative counts)")
	}
	res, err := remote.Prune(*dir, time.Now(), remote.Policy{Daily: *daily, Weekly: *weekly}, *dry)
	if err != nil {
		return err
	}
	verb := "removed"
	if *dry {
		verb = "would remove"
	}
	for _, n := range res.Removed {
		fmt.Fprintf(e.stdout, "%s %s\n", verb, n)
	}
	fmt.Fprintf(e.stdout, "kept %d backups, %s %d\n", len(res.Kept), verb, len(res.Removed))
	return nil
}

// runRestore verifies a backup, restores it into an empty data directory
// (and an empty PostgreSQL schema for a PostgreSQL backup) and checks
// the restored store.
func runRestore(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	from := fs.String("from", "", "the backup: a `dir` (one vigil-… directory) or https://host/path/vigil-…/ on a 'vigil backup receive' host")
	to := fs.String("to", "", "the data `dir` to restore into: must not exist or be empty")
	idFile := fs.String("identity", "", "the age identity `file` that decrypts the backup")
	verifyKey := fs.String("verify-key", "", "the backup signing key's public half (`file`: PEM or hex)")
	storeURL := fs.String("store", "", "for a PostgreSQL backup: postgres://… `url` of an EMPTY schema (its search_path) or database (secret: prefer --store-file)")
	storeFile := fs.String("store-file", "", "`file` holding the --store URL")
	fromCA := fs.String("from-ca", "", "PEM `file` of the CA of an https backup host's certificate")
	tokenFile := fs.String("token-file", "", "`file` holding the bearer token of an https backup host (env "+envBackupTokenFile+")")
	kekFile := fs.String("kek-file", "", "the key-encryption key `file` the restored server will use (default: keys.kek_file's default for --to); the erasure ledger beside it is re-applied")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"--from", *from}, {"--to", *to}, {"--identity", *idFile}, {"--verify-key", *verifyKey}} {
		if f.v == "" {
			return usagef("vigil restore: %s is required; usage: %s", f.name, restoreUsage)
		}
	}
	if fs.NArg() > 0 {
		return usagef("vigil restore: unexpected argument %q; usage: %s", fs.Arg(0), restoreUsage)
	}
	if *storeFile != "" {
		s, err := readSecretFile(*storeFile)
		if err != nil {
			return usagef("vigil restore: --store-file: %v", err)
		}
		*storeURL = s
	}
	if *storeURL != "" && !strings.HasPrefix(*storeURL, "postgres://") && !strings.HasPrefix(*storeURL, "postgresql://") {
		return usagef("vigil restore: --store: want a postgres:// URL (a SQLite backup restores into --to)")
	}
	pub, err := backup.LoadVerifyKey(*verifyKey)
	if err != nil {
		return fmt.Errorf("--verify-key: %w", err)
	}
	id, err := backup.LoadIdentity(*idFile)
	if err != nil {
		return fmt.Errorf("--identity: %w", err)
	}
	start := time.Now()
	src := *from
	if remote.IsURL(src) {
		if *tokenFile == "" {
			*tokenFile = e.getenv(envBackupTokenFile)
		}
		if *tokenFile == "" {
			return usagef("vigil restore: --token-file is required with an https --from")
		}
		token, err := readSecretFile(*tokenFile)
		if err != nil {
			return usagef("vigil restore: --token-file: %v", err)
		}
		ca, err := readOptional(*fromCA)
		if err != nil {
			return usagef("vigil restore: --from-ca: %v", err)
		}
		tmp, err := os.MkdirTemp("", "vigil-restore-")
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		defer os.RemoveAll(tmp)
		if src, err = remote.Download(ctx, src, ca, token, pub, tmp); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "downloaded %s\n", filepath.Base(src))
	}
	_, sum, err := snapshot.Restore(ctx, src, snapshot.Target{DataDir: *to, PostgresURL: *storeURL}, pub, id, func(m backup.Manifest) error {
		fmt.Fprintf(e.stdout, "signature and %d part checksums verified (backup %s of a %s store, taken %s, vigil %s)\n", len(m.Parts), m.Name, m.Store, m.Created.Format(time.RFC3339), m.VigilVersion)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "restored into %s in %v\nschema version %d; rows match the manifest in all %d tables (%s)\naudit log intact: %d records, %d checkpoints\n",
		*to, time.Since(start).Round(time.Millisecond), sum.SchemaVersion, len(sum.Counts), countSummary(sum.Counts), sum.AuditRecords, sum.AuditCheckpoints)
	return reapplyErasures(ctx, e, *to, *storeURL, *kekFile)
}

// reapplyErasures re-applies the erasure ledger kept beside the
// key-encryption key to a restored store: people erased after the backup
// was taken are erased again (their data keys destroyed) before any
// server reads them. Without the key file nothing personal can be read
// yet, and it says so.
func reapplyErasures(ctx context.Context, e env, dataDir, storeURL, kekFile string) error {
	cfg := config.Default()
	cfg.DataDir, cfg.Store, cfg.AutoMigrate = dataDir, config.Secret(storeURL), false
	cfg.Keys.KEKFile = kekFile
	kek := cfg.KEKPath()
	if _, err := os.Stat(kek); err != nil {
		fmt.Fprintf(e.stdout, "no key-encryption key at %s: personal fields stay sealed until the install's key file is put there (or pass --kek-file); then run restore's erasure step with the same command\n", kek)
		return nil
	}
	ledger, err := encrypted.ReadLedger(encrypted.LedgerFile(kek))
	if err != nil {
		return fmt.Errorf("restored, but the erasure ledger could not be read: do not start vigil on it: %w", err)
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("restored, but re-applying erasures failed: do not start vigil on it: %w", err)
	}
	defer st.Close()
	es, ok := st.(*encrypted.Store)
	if !ok {
		return errors.New("restored, but the store is not encrypted: erasures not re-applied")
	}
	n, err := encrypted.ApplyErasures(ctx, es, ledger)
	if err != nil {
		return fmt.Errorf("restored; %d erasures re-applied, then: %w", n, err)
	}
	fmt.Fprintf(e.stdout, "erasure ledger %s: %d entries, %d people erased again (erased after this backup was taken)\n", encrypted.LedgerFile(kek), len(ledger), n)
	return nil
}

// readSecretFile reads a secret (a token, a URL) from a file, trimming
// one trailing newline; errors never hold its contents.
func readSecretFile(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if fi.Size() > 64<<10 {
		return "", fmt.Errorf("%s: larger than 64 KiB", p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("%s is empty", p)
	}
	return s, nil
}

func readOptional(p string) ([]byte, error) {
	if p == "" {
		return nil, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// countSummary names the counts an operator checks first.
func countSummary(c map[string]int64) string {
	var s []string
	for _, t := range []string{"orgs", "people", "devices", "alerts", "audit_log", "positions"} {
		if n, ok := c[t]; ok {
			s = append(s, fmt.Sprintf("%s %d", t, n))
		}
	}
	return strings.Join(s, ", ")
}

// inside reports whether p is dir or below it.
func inside(dir, p string) bool {
	ad, err1 := filepath.Abs(dir)
	ap, err2 := filepath.Abs(p)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func vigilVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}
