package firmware

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Repo is an offline image repository on disk, as the release pipeline
// keeps it:
//
//	DIR/root/N.root.json   every root version
//	DIR/targets.json       the targets, signed by the release keys
//	DIR/images/NAME        the image files, by target name
//
// Private keys are separate files (Init writes them to a directory of
// their own) and belong offline.
type Repo struct{ Dir string }

// InitOptions shape a new repository.
type InitOptions struct {
	Keys      int           // release keys to make (root and targets roles)
	Threshold int           // signatures a role needs
	Online    *metadata.Key // the server's online key: snapshot and timestamp
	KeyDir    string        // where the private keys go
	Expires   time.Duration // root lifetime
}

// Init makes the release keys, root version 1 signed by all of them, and
// an empty targets version 1 (unsigned). It returns the key file paths.
func (r Repo) Init(o InitOptions, now time.Time) ([]string, error) {
	if o.Keys < 1 || o.Keys > 16 {
		return nil, fmt.Errorf("init: --keys %d: want 1 to 16", o.Keys)
	}
	if o.Threshold < 1 || o.Threshold > o.Keys {
		return nil, fmt.Errorf("init: --threshold %d: want 1 to --keys (%d)", o.Threshold, o.Keys)
	}
	if o.Online == nil {
		return nil, errors.New("init: the server's online key is required (see `vigil firmware online-key`)")
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "root")); err == nil {
		return nil, fmt.Errorf("init: %s already holds a repository", r.Dir)
	}
	for _, d := range []string{r.Dir, filepath.Join(r.Dir, "root"), filepath.Join(r.Dir, "images"), o.KeyDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
	}
	root := metadata.Root(now.Add(o.Expires).UTC().Truncate(time.Second))
	root.Signed.SpecVersion, root.Signed.ConsistentSnapshot = specVersion, false
	var signers []*Signer
	var paths []string
	for i := range o.Keys {
		s, err := GenerateSigner()
		if err != nil {
			return nil, err
		}
		p := filepath.Join(o.KeyDir, fmt.Sprintf("release-%d-%s.key", i+1, s.ID()[:8]))
		if err := s.WriteKeyFile(p); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
		for _, role := range []string{metadata.ROOT, metadata.TARGETS} {
			if err := root.Signed.AddKey(s.key, role); err != nil {
				return nil, fmt.Errorf("init: %w", err)
			}
		}
		signers, paths = append(signers, s), append(paths, p)
	}
	for _, role := range []string{metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if err := root.Signed.AddKey(o.Online, role); err != nil {
			return nil, fmt.Errorf("init: online key: %w", err)
		}
	}
	root.Signed.Roles[metadata.ROOT].Threshold = o.Threshold
	root.Signed.Roles[metadata.TARGETS].Threshold = o.Threshold
	for _, s := range signers {
		if _, err := root.Sign(s.s); err != nil {
			return nil, fmt.Errorf("init: sign root: %w", err)
		}
	}
	if err := root.ToFile(r.rootPath(1), true); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	t := metadata.Targets(now.Add(365 * 24 * time.Hour).UTC().Truncate(time.Second))
	t.Signed.SpecVersion = specVersion
	if err := t.ToFile(r.targetsPath(), true); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return paths, nil
}

func (r Repo) rootPath(v int64) string {
	return filepath.Join(r.Dir, "root", strconv.FormatInt(v, 10)+".root.json")
}
func (r Repo) targetsPath() string { return filepath.Join(r.Dir, "targets.json") }

// roots reads every root version, oldest first.
func (r Repo) roots() ([]*metadata.Metadata[metadata.RootType], [][]byte, error) {
	ents, err := os.ReadDir(filepath.Join(r.Dir, "root"))
	if err != nil {
		return nil, nil, fmt.Errorf("read roots: %w", err)
	}
	var vs []int64
	for _, e := range ents {
		v, ok := strings.CutSuffix(e.Name(), ".root.json")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n < 1 {
			return nil, nil, fmt.Errorf("read roots: unexpected file root/%s", e.Name())
		}
		vs = append(vs, n)
	}
	slices.Sort(vs)
	var ms []*metadata.Metadata[metadata.RootType]
	var bodies [][]byte
	for _, v := range vs {
		b, err := os.ReadFile(r.rootPath(v))
		if err != nil {
			return nil, nil, fmt.Errorf("read roots: %w", err)
		}
		m, err := metadata.Root().FromBytes(b)
		if err != nil {
			return nil, nil, fmt.Errorf("read root/%d.root.json: %w", v, err)
		}
		ms, bodies = append(ms, m), append(bodies, b)
	}
	if len(ms) == 0 {
		return nil, nil, fmt.Errorf("read roots: %s has no root/1.root.json (run vigil release init)", r.Dir)
	}
	return ms, bodies, nil
}

func (r Repo) targets() (*metadata.Metadata[metadata.TargetsType], error) {
	t, err := metadata.Targets().FromFile(r.targetsPath())
	if err != nil {
		return nil, fmt.Errorf("read targets.json: %w", err)
	}
	return t, nil
}

// edit opens targets for a change: a signed targets becomes the next
// version, unsigned (every key signs again).
func (r Repo) edit(t *metadata.Metadata[metadata.TargetsType], expires time.Time) {
	if len(t.Signatures) > 0 {
		t.Signed.Version++
		t.ClearSignatures()
	}
	t.Signed.Expires = expires.UTC().Truncate(time.Second)
}

// Add copies an image into the repository and lists it in targets (a new,
// unsigned version). It returns the target name.
func (r Repo) Add(file, version, hardware string, knownProblem bool, expires time.Time) (string, error) {
	v, err := ParseVersion(version)
	if err != nil {
		return "", fmt.Errorf("add: %w", err)
	}
	if !ValidHardware(hardware) {
		return "", fmt.Errorf("add: --hardware %q: want 1 to 64 of a-z 0-9 . _ - starting with a letter or digit", hardware)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("add: %w", err)
	}
	if len(data) == 0 {
		return "", fmt.Errorf("add: %s is empty", file)
	}
	t, err := r.targets()
	if err != nil {
		return "", err
	}
	name := TargetName(hardware, v)
	if _, ok := t.Signed.Targets[name]; ok {
		return "", fmt.Errorf("add: %s is already released; a release never changes (use a new version)", name)
	}
	tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
	if err != nil {
		return "", fmt.Errorf("add: %w", err)
	}
	if _, err := imageOf(name, withCustom(tf, Custom{Version: v.String(), Hardware: hardware, KnownProblem: knownProblem})); err != nil {
		return "", fmt.Errorf("add: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "images", name), data, 0o644); err != nil {
		return "", fmt.Errorf("add: %w", err)
	}
	r.edit(t, expires)
	t.Signed.Targets[name] = tf
	if err := t.ToFile(r.targetsPath(), true); err != nil {
		return "", fmt.Errorf("add: %w", err)
	}
	return name, nil
}

// Mark sets or clears a released image's known-problem flag (a new,
// unsigned targets version).
func (r Repo) Mark(name string, knownProblem bool, expires time.Time) error {
	t, err := r.targets()
	if err != nil {
		return err
	}
	tf, ok := t.Signed.Targets[name]
	if !ok {
		return fmt.Errorf("mark: no target %s", name)
	}
	img, err := imageOf(name, tf)
	if err != nil {
		return fmt.Errorf("mark: %w", err)
	}
	r.edit(t, expires)
	withCustom(tf, Custom{Version: img.Version.String(), Hardware: img.Hardware, KnownProblem: knownProblem})
	if err := t.ToFile(r.targetsPath(), true); err != nil {
		return fmt.Errorf("mark: %w", err)
	}
	return nil
}

func withCustom(tf *metadata.TargetFiles, c Custom) *metadata.TargetFiles {
	b, _ := jsonMarshal(c)
	raw := b
	tf.Custom = &raw
	return tf
}

// Sign adds key's signature wherever the key belongs and has not signed:
// the targets, and the newest root (as a key of that root or of the one
// before it, for a rotation). It says what it signed.
func (r Repo) Sign(key *Signer) ([]string, error) {
	roots, _, err := r.roots()
	if err != nil {
		return nil, err
	}
	newest := roots[len(roots)-1]
	var did []string
	inRole := func(root *metadata.Metadata[metadata.RootType], role string) bool {
		ro := root.Signed.Roles[role]
		return ro != nil && slices.Contains(ro.KeyIDs, key.id)
	}
	signedBy := func(sigs []metadata.Signature) bool {
		return slices.ContainsFunc(sigs, func(s metadata.Signature) bool { return s.KeyID == key.id })
	}
	rootKey := inRole(newest, metadata.ROOT) || len(roots) > 1 && inRole(roots[len(roots)-2], metadata.ROOT)
	if rootKey && !signedBy(newest.Signatures) {
		if _, err := newest.Sign(key.s); err != nil {
			return nil, fmt.Errorf("sign root: %w", err)
		}
		if err := newest.ToFile(r.rootPath(newest.Signed.Version), true); err != nil {
			return nil, fmt.Errorf("sign root: %w", err)
		}
		did = append(did, fmt.Sprintf("root version %d", newest.Signed.Version))
	}
	t, err := r.targets()
	if err != nil {
		return nil, err
	}
	if inRole(newest, metadata.TARGETS) && !signedBy(t.Signatures) {
		if _, err := t.Sign(key.s); err != nil {
			return nil, fmt.Errorf("sign targets: %w", err)
		}
		if err := t.ToFile(r.targetsPath(), true); err != nil {
			return nil, fmt.Errorf("sign targets: %w", err)
		}
		did = append(did, fmt.Sprintf("targets version %d", t.Signed.Version))
	}
	if !rootKey && !inRole(newest, metadata.TARGETS) {
		return nil, fmt.Errorf("sign: key %s is not a release key of this repository", key.id)
	}
	return did, nil
}

// Bundle reads the repository as the server takes it.
func (r Repo) Bundle() (Bundle, error) {
	_, bodies, err := r.roots()
	if err != nil {
		return Bundle{}, err
	}
	tb, err := os.ReadFile(r.targetsPath())
	if err != nil {
		return Bundle{}, fmt.Errorf("read targets.json: %w", err)
	}
	t, err := metadata.Targets().FromBytes(tb)
	if err != nil {
		return Bundle{}, fmt.Errorf("read targets.json: %w", err)
	}
	b := Bundle{Roots: bodies, Targets: tb, Images: map[string][]byte{}}
	for name := range t.Signed.Targets {
		if !ValidTargetName(name) {
			return Bundle{}, fmt.Errorf("read images: target name %q is not one Vigil makes", name)
		}
		data, err := os.ReadFile(filepath.Join(r.Dir, "images", name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // VerifyRelease names it
		}
		if err != nil {
			return Bundle{}, fmt.Errorf("read images: %w", err)
		}
		b.Images[name] = data
	}
	return b, nil
}

// Rotate makes the next root version with new release keys (the online
// key stays): written unsigned, it needs the threshold of the current
// root's keys and of its own (`vigil release sign` with each). The
// targets become a new unsigned version for the new keys to sign. It
// returns the new key files.
func (r Repo) Rotate(keys, threshold int, keyDir string, expires time.Duration, now time.Time) ([]string, error) {
	if keys < 1 || keys > 16 || threshold < 1 || threshold > keys {
		return nil, fmt.Errorf("rotate: --keys %d --threshold %d: want 1 ≤ threshold ≤ keys ≤ 16", keys, threshold)
	}
	roots, _, err := r.roots()
	if err != nil {
		return nil, err
	}
	cur := roots[len(roots)-1]
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	next := metadata.Root(now.Add(expires).UTC().Truncate(time.Second))
	next.Signed.SpecVersion, next.Signed.ConsistentSnapshot, next.Signed.Version = specVersion, false, cur.Signed.Version+1
	for _, role := range []string{metadata.SNAPSHOT, metadata.TIMESTAMP} {
		for _, id := range cur.Signed.Roles[role].KeyIDs {
			if err := next.Signed.AddKey(cur.Signed.Keys[id], role); err != nil {
				return nil, fmt.Errorf("rotate: %w", err)
			}
		}
	}
	var paths []string
	for i := range keys {
		s, err := GenerateSigner()
		if err != nil {
			return nil, err
		}
		p := filepath.Join(keyDir, fmt.Sprintf("release-v%d-%d-%s.key", next.Signed.Version, i+1, s.ID()[:8]))
		if err := s.WriteKeyFile(p); err != nil {
			return nil, fmt.Errorf("rotate: %w", err)
		}
		for _, role := range []string{metadata.ROOT, metadata.TARGETS} {
			if err := next.Signed.AddKey(s.key, role); err != nil {
				return nil, fmt.Errorf("rotate: %w", err)
			}
		}
		paths = append(paths, p)
	}
	next.Signed.Roles[metadata.ROOT].Threshold = threshold
	next.Signed.Roles[metadata.TARGETS].Threshold = threshold
	if err := next.ToFile(r.rootPath(next.Signed.Version), true); err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	t, err := r.targets()
	if err != nil {
		return nil, err
	}
	r.edit(t, t.Signed.Expires)
	if err := t.ToFile(r.targetsPath(), true); err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	return paths, nil
}
