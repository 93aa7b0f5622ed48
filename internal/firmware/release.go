package firmware

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Custom is what Vigil keeps in a target's custom metadata (signed with
// the target, offline, by the release keys).
type Custom struct {
	Version      string `json:"version"`
	Hardware     string `json:"hardware"`
	KnownProblem bool   `json:"known_problem,omitempty"`
}

// Image is one approved firmware image: a target of the image
// repository's offline-signed targets.
type Image struct {
	Name         string
	Hardware     string
	Version      Version
	KnownProblem bool
	Length       int64
	SHA256       string // hex
}

// Bundle is a release as the pipeline hands it to the server: every root
// version (1.root.json …), the targets metadata and the image files named
// by their target names.
type Bundle struct {
	Roots   [][]byte
	Targets []byte
	Images  map[string][]byte
}

// Release is a verified Bundle.
type Release struct {
	// Roots are the root versions newer than the trusted one, oldest
	// first, each verified by its predecessor's threshold and its own.
	Roots []RootVersion
	// Root is the newest root.
	Root           *metadata.Metadata[metadata.RootType]
	Targets        []byte
	TargetsVersion int64
	TargetsExpires time.Time
	Images         []Image // by name
}

// RootVersion is one root metadata file.
type RootVersion struct {
	Version int64
	Body    []byte
	Expires time.Time
}

// ReleaseError is a release refused: what is wrong, for the operator.
type ReleaseError struct{ Msg string }

func (e *ReleaseError) Error() string { return "release refused: " + e.Msg }

// Refuse makes a ReleaseError.
func Refuse(format string, args ...any) error {
	return &ReleaseError{Msg: fmt.Sprintf(format, args...)}
}

// IsReleaseError reports whether err is a refused release (bad input, not
// a failure to check).
func IsReleaseError(err error) bool {
	var re *ReleaseError
	return errors.As(err, &re)
}

// VerifyRelease checks a bundle against the trusted root (nil on the first
// upload: the bundle's first root must then be signed by its own
// threshold, and the operator confirms its key ids). Every newer root must
// be signed by the threshold of the previous root and of its own (TUF root
// rotation); the targets by the newest root's targets threshold (offline
// keys); the snapshot and timestamp roles must name the server's online
// key (online may be nil when only the pipeline verifies); every image
// must be present with the declared length and SHA-256.
func VerifyRelease(trusted []byte, b Bundle, online *metadata.Key, now time.Time) (Release, error) {
	var rel Release
	var cur *metadata.Metadata[metadata.RootType]
	if trusted != nil {
		r, err := metadata.Root().FromBytes(trusted)
		if err != nil {
			return rel, fmt.Errorf("verify release: trusted root: %w", err)
		}
		cur = r
	}
	if len(b.Roots) == 0 && cur == nil {
		return rel, Refuse("no root metadata (root/1.root.json)")
	}
	roots := make([]*metadata.Metadata[metadata.RootType], 0, len(b.Roots))
	bodies := map[int64][]byte{}
	for i, body := range b.Roots {
		r, err := metadata.Root().FromBytes(body)
		if err != nil {
			return rel, Refuse("root file %d: %v", i+1, err)
		}
		if _, dup := bodies[r.Signed.Version]; dup {
			return rel, Refuse("root version %d given twice", r.Signed.Version)
		}
		bodies[r.Signed.Version] = body
		roots = append(roots, r)
	}
	slices.SortFunc(roots, func(x, y *metadata.Metadata[metadata.RootType]) int {
		return int(x.Signed.Version - y.Signed.Version)
	})
	if cur == nil {
		first := roots[0]
		if err := first.VerifyDelegate(metadata.ROOT, first); err != nil {
			return rel, Refuse("root version %d is not signed by its own threshold of root keys: %v", first.Signed.Version, err)
		}
		cur = first
		rel.Roots = append(rel.Roots, RootVersion{first.Signed.Version, bodies[first.Signed.Version], first.Signed.Expires})
	}
	for _, r := range roots {
		v := r.Signed.Version
		if v <= cur.Signed.Version {
			continue // already trusted
		}
		if v != cur.Signed.Version+1 {
			return rel, Refuse("root version %d follows version %d: a root rotation goes one version at a time", v, cur.Signed.Version)
		}
		if err := cur.VerifyDelegate(metadata.ROOT, r); err != nil {
			return rel, Refuse("root version %d is not signed by the threshold of root version %d's keys: %v", v, cur.Signed.Version, err)
		}
		if err := r.VerifyDelegate(metadata.ROOT, r); err != nil {
			return rel, Refuse("root version %d is not signed by its own threshold of root keys: %v", v, err)
		}
		cur = r
		rel.Roots = append(rel.Roots, RootVersion{v, bodies[v], r.Signed.Expires})
	}
	if cur.Signed.IsExpired(now) {
		return rel, Refuse("root version %d expired at %s", cur.Signed.Version, cur.Signed.Expires.UTC().Format(time.RFC3339))
	}
	if cur.Signed.ConsistentSnapshot {
		return rel, Refuse("root version %d asks for consistent snapshots; Vigil serves plain snapshots", cur.Signed.Version)
	}
	if online != nil {
		id, err := online.ID()
		if err != nil {
			return rel, fmt.Errorf("verify release: online key: %w", err)
		}
		for _, role := range []string{metadata.SNAPSHOT, metadata.TIMESTAMP} {
			ro := cur.Signed.Roles[role]
			if ro == nil || ro.Threshold != 1 || !slices.Equal(ro.KeyIDs, []string{id}) {
				return rel, Refuse("root version %d: the %s role must be this server's online key %s alone, threshold 1 (see `vigil firmware online-key`)", cur.Signed.Version, role, id)
			}
		}
	}
	if ro := cur.Signed.Roles[metadata.TARGETS]; ro == nil || ro.Threshold < 1 || slices.ContainsFunc(ro.KeyIDs, func(k string) bool {
		return online != nil && k == mustID(online)
	}) {
		return rel, Refuse("root version %d: the targets role must be offline release keys, never the online key", cur.Signed.Version)
	}
	rel.Root = cur
	if len(b.Targets) == 0 {
		return rel, Refuse("no targets metadata (targets.json)")
	}
	t, err := metadata.Targets().FromBytes(b.Targets)
	if err != nil {
		return rel, Refuse("targets.json: %v", err)
	}
	if err := cur.VerifyDelegate(metadata.TARGETS, t); err != nil {
		return rel, Refuse("targets version %d is not signed by the threshold of offline release keys: %v", t.Signed.Version, err)
	}
	if t.Signed.IsExpired(now) {
		return rel, Refuse("targets version %d expired at %s", t.Signed.Version, t.Signed.Expires.UTC().Format(time.RFC3339))
	}
	if t.Signed.Delegations != nil {
		return rel, Refuse("targets version %d delegates; Vigil releases have no delegations", t.Signed.Version)
	}
	rel.Targets, rel.TargetsVersion, rel.TargetsExpires = b.Targets, t.Signed.Version, t.Signed.Expires
	seen := map[string]string{}
	for name, tf := range t.Signed.Targets {
		img, err := imageOf(name, tf)
		if err != nil {
			return rel, Refuse("%v", err)
		}
		key := img.Hardware + " " + img.Version.String()
		if other, dup := seen[key]; dup {
			return rel, Refuse("targets %s and %s are both hardware %s version %s", other, name, img.Hardware, img.Version)
		}
		seen[key] = name
		data, ok := b.Images[name]
		if !ok {
			return rel, Refuse("image %s is missing", name)
		}
		if err := tf.VerifyLengthHashes(data); err != nil {
			return rel, Refuse("image %s does not match its target (length %d, sha256): %v", name, tf.Length, err)
		}
		rel.Images = append(rel.Images, img)
	}
	slices.SortFunc(rel.Images, func(x, y Image) int { return cmpString(x.Name, y.Name) })
	return rel, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func mustID(k *metadata.Key) string {
	id, _ := k.ID()
	return id
}

// imageOf reads a target's Vigil fields and checks its name and hashes.
func imageOf(name string, tf *metadata.TargetFiles) (Image, error) {
	if tf.Custom == nil {
		return Image{}, fmt.Errorf("target %s has no custom version and hardware", name)
	}
	var c Custom
	dec := json.NewDecoder(bytes.NewReader(*tf.Custom))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Image{}, fmt.Errorf("target %s: custom: %v", name, err)
	}
	v, err := ParseVersion(c.Version)
	if err != nil {
		return Image{}, fmt.Errorf("target %s: %v", name, err)
	}
	if !ValidHardware(c.Hardware) {
		return Image{}, fmt.Errorf("target %s: hardware %q: want 1 to 64 of a-z 0-9 . _ -", name, c.Hardware)
	}
	if want := TargetName(c.Hardware, v); name != want {
		return Image{}, fmt.Errorf("target %s: named %s by its hardware and version", name, want)
	}
	h := tf.Hashes["sha256"]
	if len(h) != sha256.Size {
		return Image{}, fmt.Errorf("target %s: no sha256 hash", name)
	}
	if tf.Length <= 0 {
		return Image{}, fmt.Errorf("target %s: length %d", name, tf.Length)
	}
	return Image{Name: name, Hardware: c.Hardware, Version: v, KnownProblem: c.KnownProblem, Length: tf.Length, SHA256: hex.EncodeToString(h)}, nil
}

// TargetOf is the TUF target entry for an image (the director copies the
// image repository's entry).
func TargetOf(img Image) (*metadata.TargetFiles, error) {
	h, err := hex.DecodeString(img.SHA256)
	if err != nil || len(h) != sha256.Size {
		return nil, fmt.Errorf("target %s: bad sha256", img.Name)
	}
	c, err := json.Marshal(Custom{Version: img.Version.String(), Hardware: img.Hardware, KnownProblem: img.KnownProblem})
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", img.Name, err)
	}
	raw := json.RawMessage(c)
	tf := metadata.TargetFile()
	tf.Path, tf.Length, tf.Hashes, tf.Custom = img.Name, img.Length, metadata.Hashes{"sha256": h}, &raw
	return tf, nil
}

// RootKeyIDs are the root role's key ids of a bundle's first root, sorted:
// what an operator confirms on the first upload.
func RootKeyIDs(b Bundle) ([]string, error) {
	if len(b.Roots) == 0 {
		return nil, Refuse("no root metadata (root/1.root.json)")
	}
	r, err := metadata.Root().FromBytes(b.Roots[0])
	if err != nil {
		return nil, Refuse("root: %v", err)
	}
	ro := r.Signed.Roles[metadata.ROOT]
	if ro == nil {
		return nil, Refuse("root has no root role")
	}
	ids := slices.Clone(ro.KeyIDs)
	slices.Sort(ids)
	return ids, nil
}
