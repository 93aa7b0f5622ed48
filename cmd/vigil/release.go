package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"vigil/internal/firmware"
)

const releaseUsage = `vigil release init --dir REPO --keys N --threshold T --online-key FILE [--key-dir DIR]
  | vigil release add --dir REPO --file IMAGE --version V --hardware H [--known-problem]
  | vigil release mark --dir REPO --image NAME --known-problem=true|false
  | vigil release sign --dir REPO --key KEYFILE
  | vigil release rotate --dir REPO --keys N --threshold T [--key-dir DIR]
  | vigil release verify --dir REPO [--online-key FILE]`

// runRelease is the offline release pipeline: signing firmware releases
// with the image repository's offline keys (issue 8). It needs no server
// and no configuration; run it where the release keys are.
func runRelease(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usagef("%s", releaseUsage)
	}
	switch args[0] {
	case "init":
		return releaseInit(e, args[1:])
	case "add":
		return releaseAdd(e, args[1:])
	case "mark":
		return releaseMark(e, args[1:])
	case "sign":
		return releaseSign(e, args[1:])
	case "verify":
		return releaseVerify(e, args[1:])
	case "rotate":
		return releaseRotate(e, args[1:])
	}
	return usagef("vigil release: unknown subcommand %q (want init, add, mark, sign, verify or rotate)", args[0])
}

// releaseFlags parses a release subcommand's flags; --dir is required.
func releaseFlags(e env, fs *flag.FlagSet, args []string) (string, error) {
	dir := fs.String("dir", "", "the release repository `dir`ectory (required)")
	fs.SetOutput(e.stderr)
	if err := fs.Parse(args); err != nil {
		return "", usagef("vigil %s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return "", usagef("vigil %s takes no arguments, got %q", fs.Name(), fs.Arg(0))
	}
	if *dir == "" {
		return "", usagef("vigil %s: --dir is required", fs.Name())
	}
	return *dir, nil
}

func readOnlineKey(path string) (*firmwareKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("online key: %w", err)
	}
	k, err := firmware.ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("online key %s: %w", path, err)
	}
	return k, nil
}

func releaseInit(e env, args []string) error {
	fs := flag.NewFlagSet("release init", flag.ContinueOnError)
	keys := fs.Int("keys", 3, "release keys to make: `n`, 1 to 16")
	threshold := fs.Int("threshold", 2, "signatures a release needs: `t`, 1 to --keys")
	online := fs.String("online-key", "", "the server's online public key `file` (from 'vigil firmware online-key'; required)")
	keyDir := fs.String("key-dir", "", "where the private release keys go (default REPO/keys); move them offline")
	expires := fs.Duration("expires", 365*24*time.Hour, "root `lifetime`")
	dir, err := releaseFlags(e, fs, args)
	if err != nil {
		return err
	}
	if *online == "" {
		return usagef("vigil release init: --online-key is required (print it on the server with 'vigil firmware online-key')")
	}
	if *keys < 1 || *keys > 16 || *threshold < 1 || *threshold > *keys {
		return usagef("vigil release init: --keys %d --threshold %d: want 1 ≤ threshold ≤ keys ≤ 16", *keys, *threshold)
	}
	if *expires < 24*time.Hour {
		return usagef("vigil release init: --expires %v: at least 24h", *expires)
	}
	k, err := readOnlineKey(*online)
	if err != nil {
		return err
	}
	kd := *keyDir
	if kd == "" {
		kd = filepath.Join(dir, "keys")
	}
	paths, err := firmware.Repo{Dir: dir}.Init(firmware.InitOptions{Keys: *keys, Threshold: *threshold, Online: k, KeyDir: kd, Expires: *expires}, time.Now())
	if err != nil {
		return fmt.Errorf("release %w", err)
	}
	fmt.Fprintf(e.stdout, "release repository %s: root version 1, %d release keys, threshold %d\n", dir, *keys, *threshold)
	for _, p := range paths {
		fmt.Fprintf(e.stdout, "  key %s\n", p)
	}
	fmt.Fprintln(e.stdout, "Move each key to its own offline holder; a release needs", *threshold, "of them.")
	return nil
}

func releaseAdd(e env, args []string) error {
	fs := flag.NewFlagSet("release add", flag.ContinueOnError)
	file := fs.String("file", "", "the firmware image `file` (required)")
	version := fs.String("version", "", "its `version`, MAJOR.MINOR.PATCH (required)")
	hardware := fs.String("hardware", "", "the `hardware` id it runs on, e.g. watch (required)")
	problem := fs.Bool("known-problem", false, "mark the image as having a known problem")
	expires := fs.Duration("expires", 180*24*time.Hour, "how long the new targets stay valid (`duration`)")
	dir, err := releaseFlags(e, fs, args)
	if err != nil {
		return err
	}
	if *file == "" || *version == "" || *hardware == "" {
		return usagef("vigil release add: --file, --version and --hardware are required")
	}
	if *expires < time.Hour {
		return usagef("vigil release add: --expires %v: at least 1h", *expires)
	}
	name, err := firmware.Repo{Dir: dir}.Add(*file, *version, *hardware, *problem, time.Now().Add(*expires))
	if err != nil {
		return fmt.Errorf("release %w", err)
	}
	fmt.Fprintf(e.stdout, "added %s; targets need signing again ('vigil release sign')\n", name)
	return nil
}

func releaseMark(e env, args []string) error {
	fs := flag.NewFlagSet("release mark", flag.ContinueOnError)
	image := fs.String("image", "", "the image's target `name`, e.g. watch-1.1.0.img (required)")
	problem := fs.Bool("known-problem", true, "whether the image has a known problem")
	expires := fs.Duration("expires", 180*24*time.Hour, "how long the new targets stay valid (`duration`)")
	dir, err := releaseFlags(e, fs, args)
	if err != nil {
		return err
	}
	if *image == "" {
		return usagef("vigil release mark: --image is required")
	}
	if err := (firmware.Repo{Dir: dir}).Mark(*image, *problem, time.Now().Add(*expires)); err != nil {
		return fmt.Errorf("release %w", err)
	}
	fmt.Fprintf(e.stdout, "%s known problem: %v; targets need signing again ('vigil release sign')\n", *image, *problem)
	return nil
}

func releaseSign(e env, args []string) error {
	fs := flag.NewFlagSet("release sign", flag.ContinueOnError)
	keyFile := fs.String("key", "", "a release key `file` (required)")
	dir, err := releaseFlags(e, fs, args)
	if err != nil {
		return err
	}
	if *keyFile == "" {
		return usagef("vigil release sign: --key is required")
	}
	k, err := firmware.ReadKeyFile(*keyFile)
	if err != nil {
		return err
	}
	did, err := firmware.Repo{Dir: dir}.Sign(k)
	if err != nil {
		return fmt.Errorf("release %w", err)
	}
	if len(did) == 0 {
		fmt.Fprintf(e.stdout, "key %s had signed everything it signs already\n", k.ID()[:16])
		return nil
	}
	fmt.Fprintf(e.stdout, "key %s signed %s\n", k.ID()[:16], strings.Join(did, " and "))
	return nil
}

// releaseVerify checks the repository as the server will: the root chain,
// the targets threshold, every image's length and hash.
func releaseVerify(e env, args []string) error {
	fs := flag.NewFlagSet("release verify", flag.ContinueOnError)
	online := fs.String("online-key", "", "also check the snapshot and timestamp roles name this online public key `file`")
	dir, err := releaseFlags(e, fs, args)
	if err != nil {
		return err
	}
	var k *firmwareKey
	if *online != "" {
		if k, err = readOnlineKey(*online); err != nil {
			return err
		}
	}
	b, err := firmware.Repo{Dir: dir}.Bundle()
	if err != nil {
		return fmt.Errorf("release verify: %w", err)
	}
	rel, err := firmware.VerifyRelease(nil, b, k, time.Now())
	if err != nil {
		if firmware.IsReleaseError(err) {
			return errors.New(err.Error())
		}
		return fmt.Errorf("release verify: %w", err)
	}
	fmt.Fprintf(e.stdout, "ok: root version %d, targets version %d (expires %s), %d images\n",
		rel.Root.Signed.Version, rel.TargetsVersion, rel.TargetsExpires.Format(time.DateOnly), len(rel.Images))
	for _, im := range rel.Images {
		mark := ""
		if im.KnownProblem {
			mark = "  (known problem)"
		}
		fmt.Fprintf(e.stdout, "  %s  %d bytes  sha256 %s%s\n", im.Name, im.Length, im.SHA256[:16], mark)
	}
	return nil
}

// firmwareKey is a TUF public key.
type firmwareKey = metadata.Key

// releaseRotate replaces the release keys: the next root names new keys
// and needs the signatures of the current root's threshold and its own.
func releaseRotate(e env, args []string) error {
	fs := flag.NewFlagSet("release rotate", flag.ContinueOnError)
	keys := fs.Int("keys", 3, "new release keys to make: `n`, 1 to 16")
	threshold := fs.Int("threshold", 2, "signatures a release needs: `t`, 1 to --keys")
	keyDir := fs.String("key-dir", "", "where the new private keys go (default REPO/keys); move them offline")
	expires := fs.Duration("expires", 365*24*time.Hour, "the new root's `lifetime`")
	dir, err := releaseFlags(e, fs, args)
	if err != nil {
		return err
	}
	if *keys < 1 || *keys > 16 || *threshold < 1 || *threshold > *keys {
		return usagef("vigil release rotate: --keys %d --threshold %d: want 1 ≤ threshold ≤ keys ≤ 16", *keys, *threshold)
	}
	if *expires < 24*time.Hour {
		return usagef("vigil release rotate: --expires %v: at least 24h", *expires)
	}
	kd := *keyDir
	if kd == "" {
		kd = filepath.Join(dir, "keys")
	}
	paths, err := firmware.Repo{Dir: dir}.Rotate(*keys, *threshold, kd, *expires, time.Now())
	if err != nil {
		return fmt.Errorf("release %w", err)
	}
	fmt.Fprintf(e.stdout, "new root written with %d release keys, threshold %d; it needs the current keys' threshold and its own ('vigil release sign'), and the new keys sign the targets\n", *keys, *threshold)
	for _, p := range paths {
		fmt.Fprintf(e.stdout, "  key %s\n", p)
	}
	return nil
}
