package firmware

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// specVersion is the TUF specification version written into metadata.
const specVersion = "1.0.31"

// Freshness is a snapshot and timestamp pair signed by the online key.
type Freshness struct {
	Version   int64
	Snapshot  []byte
	Timestamp []byte
	Expires   time.Time // the timestamp's expiry
}

// SignFreshness makes snapshot and timestamp version `version` over the
// given targets metadata (the image repository's offline-signed targets,
// or a director targets), signed by the online key. The meta entries carry
// version and SHA-256 but no length, so that metadata served out of step
// reads as a mixed snapshot (hash or version mismatch); the client bounds
// every metadata download by its maximum lengths. The snapshot lives
// as long as the targets; the timestamp ttl.
func SignFreshness(online *Signer, targets []byte, version int64, now time.Time, ttl time.Duration) (Freshness, error) {
	t, err := metadata.Targets().FromBytes(targets)
	if err != nil {
		return Freshness{}, fmt.Errorf("sign snapshot: targets: %w", err)
	}
	h := sha256.Sum256(targets)
	snap := metadata.Snapshot(t.Signed.Expires)
	snap.Signed.SpecVersion, snap.Signed.Version = specVersion, version
	snap.Signed.Meta["targets.json"] = &metadata.MetaFiles{Version: t.Signed.Version, Hashes: metadata.Hashes{"sha256": h[:]}}
	if _, err := snap.Sign(online.s); err != nil {
		return Freshness{}, fmt.Errorf("sign snapshot: %w", err)
	}
	sb, err := snap.ToBytes(false)
	if err != nil {
		return Freshness{}, fmt.Errorf("sign snapshot: %w", err)
	}
	sh := sha256.Sum256(sb)
	exp := now.Add(ttl).UTC().Truncate(time.Second)
	ts := metadata.Timestamp(exp)
	ts.Signed.SpecVersion, ts.Signed.Version = specVersion, version
	ts.Signed.Meta["snapshot.json"] = &metadata.MetaFiles{Version: version, Hashes: metadata.Hashes{"sha256": sh[:]}}
	if _, err := ts.Sign(online.s); err != nil {
		return Freshness{}, fmt.Errorf("sign timestamp: %w", err)
	}
	tb, err := ts.ToBytes(false)
	if err != nil {
		return Freshness{}, fmt.Errorf("sign timestamp: %w", err)
	}
	return Freshness{Version: version, Snapshot: sb, Timestamp: tb, Expires: exp}, nil
}

// DirectorRoot is the director repository's root: every role is the
// online key, threshold 1. Devices are provisioned with it.
func DirectorRoot(online *Signer, version int64, expires time.Time) ([]byte, error) {
	r := metadata.Root(expires.UTC().Truncate(time.Second))
	r.Signed.SpecVersion, r.Signed.Version, r.Signed.ConsistentSnapshot = specVersion, version, false
	for _, role := range metadata.TOP_LEVEL_ROLE_NAMES {
		if err := r.Signed.AddKey(online.key, role); err != nil {
			return nil, fmt.Errorf("director root: %w", err)
		}
	}
	if _, err := r.Sign(online.s); err != nil {
		return nil, fmt.Errorf("director root: %w", err)
	}
	b, err := r.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("director root: %w", err)
	}
	return b, nil
}

// DirectorTargets is a device's director targets: the images it should
// run (normally one), copied from the image repository, signed by the
// online key.
func DirectorTargets(online *Signer, version int64, images []Image, expires time.Time) ([]byte, error) {
	t := metadata.Targets(expires.UTC().Truncate(time.Second))
	t.Signed.SpecVersion, t.Signed.Version = specVersion, version
	for _, img := range images {
		tf, err := TargetOf(img)
		if err != nil {
			return nil, fmt.Errorf("director targets: %w", err)
		}
		t.Signed.Targets[img.Name] = tf
	}
	if _, err := t.Sign(online.s); err != nil {
		return nil, fmt.Errorf("director targets: %w", err)
	}
	b, err := t.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("director targets: %w", err)
	}
	return b, nil
}

// SignTargets adds s's signature to targets metadata and serialises it.
func SignTargets(t *metadata.Metadata[metadata.TargetsType], s *Signer) ([]byte, error) {
	if _, err := t.Sign(s.s); err != nil {
		return nil, fmt.Errorf("sign targets: %w", err)
	}
	b, err := t.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("sign targets: %w", err)
	}
	return b, nil
}
