package firmware

import (
	"encoding/hex"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// SignTargetsForTest signs targets metadata with s (a forger's tool).
func SignTargetsForTest(m *metadata.Metadata[metadata.TargetsType], s *Signer) ([]byte, error) {
	return SignTargets(m, s)
}

var _ = hex.EncodeToString

// SignRootForTest signs root metadata with the signers.
func SignRootForTest(m *metadata.Metadata[metadata.RootType], signers ...*Signer) ([]byte, error) {
	for _, s := range signers {
		if _, err := m.Sign(s.s); err != nil {
			return nil, err
		}
	}
	return m.ToBytes(false)
}
