package oidc

// ParsePending exposes the pending-login parser to tests.
func ParsePending(b []byte) error {
	_, err := parsePending(b)
	return err
}

// RoundTripPending parses b and encodes it again: for any b that parses,
// the result must be b.
func RoundTripPending(b []byte) ([]byte, error) {
	pd, err := parsePending(b)
	if err != nil {
		return nil, err
	}
	return pd.marshal(), nil
}
