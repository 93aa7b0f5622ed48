package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"vigil/internal/app"
	"vigil/internal/audit"
	"vigil/internal/store"
)

const auditUsage = "vigil audit verify [--public-key HEX] [--anchor SEQ:HASH]... | vigil audit export [--org ORG] [--since-seq N] [--actor ID] [--action NAME] [--limit N]"

// runAudit checks the audit log's hash chain and signed checkpoints
// (verify) or writes it as JSON lines (export).
func runAudit(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usagef(auditUsage)
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(ctx, e, args[1:])
	case "export":
		return runAuditExport(ctx, e, args[1:])
	}
	return usagef("vigil audit: unknown subcommand %q; usage: %s", args[0], auditUsage)
}

// anchorFlags collects repeated --anchor values.
type anchorFlags []audit.Anchor

func (a *anchorFlags) String() string {
	var s []string
	for _, x := range *a {
		s = append(s, x.String())
	}
	return strings.Join(s, ",")
}

func (a *anchorFlags) Set(v string) error {
	x, err := audit.ParseAnchor(v)
	if err != nil {
		return err
	}
	*a = append(*a, x)
	return nil
}

func runAuditVerify(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	pubHex := fs.String("public-key", "", "the checkpoint signing key's public half in hex (default: derived from <data-dir>/"+audit.KeyFileName+")")
	var anchors anchorFlags
	fs.Var(&anchors, "anchor", "a chain head saved from an \"audit anchor\" log line, as SEQ:HASH or the whole line (repeatable)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("vigil audit verify takes no arguments, got %q; usage: %s", fs.Arg(0), auditUsage)
	}
	pub, err := auditPublicKey(e, cfg.DataDir, *pubHex)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := audit.Verify(ctx, st, pub, anchors...)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "checked %d records, %d checkpoints (last at seq %d), %d anchors\n", rep.Records, rep.Checkpoints, rep.LastCheckpoint, rep.Anchors)
	if !rep.OK() {
		return fmt.Errorf("audit log is broken at seq %d: %s", rep.FirstBad, rep.Reason)
	}
	fmt.Fprintln(e.stdout, "audit log intact")
	return nil
}

// auditPublicKey returns the key given in hex, else the public half of the
// data dir's signing key; nil, with a note, when there is none (the chain
// can still be checked if nothing was signed yet).
func auditPublicKey(e env, dataDir, pubHex string) (ed25519.PublicKey, error) {
	if pubHex != "" {
		b, err := hex.DecodeString(pubHex)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, usagef("vigil audit verify: --public-key: want %d hex digits", 2*ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(b), nil
	}
	path := filepath.Join(dataDir, audit.KeyFileName)
	key, err := audit.LoadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(e.stderr, "no audit signing key at %s: checking the hash chain only\n", path)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	fmt.Fprintf(e.stdout, "checkpoint key %x\n", []byte(pub))
	return pub, nil
}

func runAuditExport(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	org := fs.String("org", "", "only this organisation's records (default: every organisation)")
	since := fs.Int64("since-seq", 0, "only records after this sequence number")
	actor := fs.String("actor", "", "only this actor's records")
	action := fs.String("action", "", "only records of this action")
	limit := fs.Int("limit", 0, "at most this many records (0: all)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("vigil audit export takes no arguments, got %q; usage: %s", fs.Arg(0), auditUsage)
	}
	if *since < 0 || *limit < 0 {
		return usagef("vigil audit export: --since-seq and --limit must not be negative")
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return audit.Export(ctx, st, e.stdout, store.AuditFilter{OrgID: *org, Actor: *actor, Action: *action, AfterSeq: *since, Limit: *limit})
}
