package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
)

// BackupConfig is the server's scheduled backups (issue 9): every Every,
// a new encrypted, signed backup of the store and the data directory's
// keys goes to To (a directory or an append-only https:// target).
type BackupConfig struct {
	// Every is the interval between scheduled backups; 0 turns them off.
	Every time.Duration
	// To is a directory outside the data directory, or an https:// URL
	// of a `vigil backup receive` target.
	To string
	// ToCA is a PEM file with the CA that signed an https target's
	// certificate, when it is not in the system roots.
	ToCA string
	// Token is the bearer token for an https target (secret; read it
	// from backup.token_file).
	Token Secret
	// RecipientFile holds the age recipient (age1…) backups are
	// encrypted to; its identity stays offline.
	RecipientFile string
	// SigningKeyFile is the Ed25519 signing key from `vigil backup
	// keygen`, outside the data directory.
	SigningKeyFile string
	// WithJetStream also copies the JetStream directory (not consistent
	// while the server runs: see docs/backup.md).
	WithJetStream bool
}

// backupOptions are the backup.* settings.
var backupOptions = []option{
	{"backup.every", "backup-every", "take a scheduled backup every `duration` (0: off; at least 1m)", kindDuration, func(c *Config) any { return &c.Backup.Every }},
	{"backup.to", "backup-to", "scheduled backups' target: a `dir` outside the data directory, or https://… of a 'vigil backup receive' host", kindString, func(c *Config) any { return &c.Backup.To }},
	{"backup.to_ca", "backup-to-ca", "PEM `file` of the CA of an https backup target's certificate", kindString, func(c *Config) any { return &c.Backup.ToCA }},
	{"backup.token", "backup-token", "bearer `token` for an https backup target (secret; prefer --backup-token-file)", kindSecret, func(c *Config) any { return &c.Backup.Token }},
	{"backup.recipient_file", "backup-recipient-file", "`file` holding the age recipient (age1…) scheduled backups are encrypted to", kindString, func(c *Config) any { return &c.Backup.RecipientFile }},
	{"backup.signing_key_file", "backup-signing-key-file", "the backup signing key `file` from 'vigil backup keygen', outside the data directory", kindString, func(c *Config) any { return &c.Backup.SigningKeyFile }},
	{"backup.with_jetstream", "backup-with-jetstream", "also copy JetStream into scheduled backups (not consistent while running)", kindBool, func(c *Config) any { return &c.Backup.WithJetStream }},
}

func defaultBackup() BackupConfig { return BackupConfig{} }

// minBackupEvery bounds how often scheduled backups run.
const minBackupEvery = time.Minute

// validateBackup checks the shape of every backup.* value set and, when
// scheduled backups are on, that the files they need are there: the
// signing key private and outside the data directory, the recipient file
// an age recipient, the CA file a PEM certificate. Errors name the
// option, never a file's contents or the token.
func (c Config) validateBackup(bad func(key, format string, args ...any)) {
	b := c.Backup
	if b.Every < 0 {
		bad("backup.every", "must not be negative (0 turns scheduled backups off)")
	} else if b.Every > 0 && b.Every < minBackupEvery {
		bad("backup.every", "%v is too often: at least %v", b.Every, minBackupEvery)
	}
	remote := strings.HasPrefix(b.To, "https://")
	switch {
	case b.To == "":
	case strings.Contains(b.To, "://") && !remote:
		bad("backup.to", "want a directory or an https:// URL (TLS verified)")
	case remote:
		u, err := url.Parse(b.To)
		switch {
		case err != nil || u.Host == "":
			bad("backup.to", "not a valid https URL")
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			bad("backup.to", "no user info, query or fragment: put the token in backup.token_file")
		}
		if b.Token.Reveal() == "" && b.Every > 0 {
			bad("backup.token", "an https backup target needs a bearer token (backup.token_file)")
		}
	default:
		if insideDir(c.DataDir, b.To) {
			bad("backup.to", "must be outside the data directory (a backup next to the data does not survive its loss)")
		}
	}
	if b.ToCA != "" && !remote {
		bad("backup.to_ca", "only for an https:// backup.to")
	}
	if b.SigningKeyFile != "" && insideDir(c.DataDir, b.SigningKeyFile) {
		bad("backup.signing_key_file", "must be outside the data directory (whoever takes the data dir could sign forged backups)")
	}
	if b.Every == 0 {
		return
	}
	for _, req := range []struct{ key, v string }{{"backup.to", b.To}, {"backup.recipient_file", b.RecipientFile}, {"backup.signing_key_file", b.SigningKeyFile}} {
		if req.v == "" {
			bad(req.key, "required when backup.every is set")
		}
	}
	if b.SigningKeyFile != "" {
		if err := checkPrivateFile(b.SigningKeyFile); err != "" {
			bad("backup.signing_key_file", "%s", err)
		}
	}
	if b.RecipientFile != "" {
		data, err := readSmallFile(b.RecipientFile)
		if err != "" {
			bad("backup.recipient_file", "%s", err)
		} else if _, perr := age.ParseX25519Recipient(strings.TrimSpace(string(data))); perr != nil {
			bad("backup.recipient_file", "%s does not hold an age X25519 recipient (age1…)", b.RecipientFile)
		}
	}
	if b.ToCA != "" {
		data, err := readSmallFile(b.ToCA)
		if err != "" {
			bad("backup.to_ca", "%s", err)
		} else if blk, _ := pem.Decode(data); blk == nil || blk.Type != "CERTIFICATE" {
			bad("backup.to_ca", "%s holds no PEM CERTIFICATE", b.ToCA)
		} else if _, perr := x509.ParseCertificate(blk.Bytes); perr != nil {
			bad("backup.to_ca", "%s: the certificate does not parse", b.ToCA)
		}
	}
}

// insideDir reports whether p is dir or below it.
func insideDir(dir, p string) bool {
	ad, err1 := filepath.Abs(dir)
	ap, err2 := filepath.Abs(p)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// checkPrivateFile says what is wrong with a key file the server reads:
// missing, unreadable, or readable by others.
func checkPrivateFile(p string) string {
	fi, err := os.Stat(p)
	if err != nil {
		return p + ": " + errText(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return p + " is readable by others (mode " + fi.Mode().Perm().String() + "): chmod 600 it"
	}
	f, err := os.Open(p)
	if err != nil {
		return p + ": " + errText(err)
	}
	_ = f.Close()
	return ""
}

func readSmallFile(p string) ([]byte, string) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, p + ": " + errText(err)
	}
	if fi.Size() > 1<<20 {
		return nil, p + ": larger than 1 MiB"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, p + ": " + errText(err)
	}
	return b, ""
}

// errText is the cause of a file error without repeating the path.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
