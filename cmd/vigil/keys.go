package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"vigil/internal/app"
	"vigil/internal/config"
	"vigil/internal/datakey"
	"vigil/internal/store/encrypted"
)

// runKeys manages the data-encryption keys: status and rotation (issue 9).
func runKeys(ctx context.Context, e env, args []string) error {
	const usage = "vigil keys status [--json] | vigil keys rotate [--remove-old] | vigil keys encrypt-existing"
	if len(args) == 0 {
		return usagef(usage)
	}
	switch args[0] {
	case "status":
		return keysStatus(ctx, e, args[1:])
	case "rotate":
		return keysRotate(ctx, e, args[1:])
	case "encrypt-existing":
		return keysEncryptExisting(ctx, e, args[1:])
	}
	return usagef("vigil keys: unknown subcommand %q (want status, rotate or encrypt-existing)", args[0])
}

// openEncrypted opens the configured store behind the encryption
// decorator, with the key-encryption key file of the config.
func openEncrypted(ctx context.Context, cfg config.Config) (*encrypted.Store, *datakey.FileKEK, func(), error) {
	kek, err := datakey.OpenFileKEK(cfg.KEKPath())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("key-encryption key: %w", err)
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	if es, ok := st.(*encrypted.Store); ok {
		return es, kek, func() { _ = st.Close() }, nil
	}
	es := encrypted.Wrap(st, encrypted.NewKeyring(st, kek, datakey.Config{CacheSize: cfg.Keys.CacheSize, CacheTTL: cfg.Keys.CacheTTL}))
	return es, kek, func() { _ = st.Close() }, nil
}

type keysStatusJSON struct {
	KEKFile  string         `json:"kek_file"`
	Current  string         `json:"current_kek"`
	KEKs     []string       `json:"keks"`
	DataKeys map[string]int `json:"data_keys_by_kek"`
	Warnings []string       `json:"warnings"`
}

func keysStatus(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("keys status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("vigil keys status: unexpected argument %q", fs.Arg(0))
	}
	es, kek, done, err := openEncrypted(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	cur, by, err := es.Keys().Status(ctx)
	if err != nil {
		return err
	}
	ids, err := kek.KeyIDs()
	if err != nil {
		return err
	}
	st := keysStatusJSON{KEKFile: kek.Path(), Current: cur, KEKs: ids, DataKeys: by, Warnings: cfg.KeysWarnings()}
	if st.Warnings == nil {
		st.Warnings = []string{}
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(st)
	}
	fmt.Fprintf(e.stdout, "key-encryption key file: %s\n", st.KEKFile)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEK\tCURRENT\tDATA KEYS WRAPPED")
	for _, id := range ids {
		fmt.Fprintf(tw, "%s\t%v\t%d\n", id, id == cur, by[id])
	}
	for id, n := range by {
		if !slices.Contains(ids, id) {
			fmt.Fprintf(tw, "%s\tMISSING FROM THE KEY FILE\t%d\n", id, n)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, w := range st.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	return nil
}

func keysRotate(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	removeOld := fs.Bool("remove-old", false, "after re-wrapping, remove the older keys from the key file (only when no data key is wrapped by one)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("vigil keys rotate: unexpected argument %q", fs.Arg(0))
	}
	es, kek, done, err := openEncrypted(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	id, err := kek.Rotate()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "new key-encryption key %s added to %s; back the key file up now, apart from the data\n", id, kek.Path())
	// A running server reloads the key file when it meets the new key id,
	// and wraps new data keys with it from its next one: no restart.
	n, err := es.Keys().Rewrap(ctx)
	if err != nil {
		return fmt.Errorf("re-wrap data keys (run vigil keys rotate again to finish; nothing is lost): %w", err)
	}
	fmt.Fprintf(e.stdout, "%d data keys re-wrapped with %s\n", n, id)
	if !*removeOld {
		return nil
	}
	// A server may have wrapped a new data key with an old key meanwhile:
	// re-wrap until none is left, a few times, then refuse.
	for range 3 {
		cur, by, err := es.Keys().Status(ctx)
		if err != nil {
			return err
		}
		var old []string
		for k, c := range by {
			if k != cur && c > 0 {
				old = append(old, k)
			}
		}
		if len(old) == 0 {
			ids, err := kek.KeyIDs()
			if err != nil {
				return err
			}
			remove := map[string]bool{}
			for _, k := range ids {
				if k != cur {
					remove[k] = true
				}
			}
			if len(remove) == 0 {
				fmt.Fprintln(e.stdout, "no older keys to remove")
				return nil
			}
			if err := kek.RemoveKeys(remove); err != nil {
				return err
			}
			removed := make([]string, 0, len(remove))
			for k := range remove {
				removed = append(removed, k)
			}
			slices.Sort(removed)
			fmt.Fprintf(e.stdout, "removed older keys %s from %s\n", strings.Join(removed, ", "), kek.Path())
			return nil
		}
		if _, err := es.Keys().Rewrap(ctx); err != nil {
			return err
		}
	}
	return fmt.Errorf("older keys still wrap data keys after re-wrapping three times; run vigil keys rotate --remove-old again")
}

// keysEncryptExisting seals personal data stored before encryption was
// turned on, in place, while the server runs.
func keysEncryptExisting(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("keys encrypt-existing", flag.ContinueOnError)
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("vigil keys encrypt-existing: unexpected argument %q", fs.Arg(0))
	}
	es, _, done, err := openEncrypted(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	n, err := es.EncryptExisting(ctx)
	total := 0
	fields := make([]string, 0, len(n))
	for k, v := range n {
		total += v
		if v > 0 {
			fields = append(fields, k)
		}
	}
	slices.Sort(fields)
	for _, k := range fields {
		fmt.Fprintf(e.stdout, "%s\t%d\n", k, n[k])
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d values sealed; copies of the old plaintext can remain in the database's free space until it is compacted (docs/privacy.md)\n", total)
	return nil
}
