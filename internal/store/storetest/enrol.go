package storetest

import (
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"vigil/internal/store"
)

func testEnrolmentTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	hash := func(tok string) []byte { h := sha256.Sum256([]byte(tok)); return h[:] }
	tok := store.EnrolmentToken{TokenHash: hash("T"), DeviceID: "d1", CreatedAt: at(0), ExpiresAt: at(15 * time.Minute)}
	must(t, s.CreateEnrolmentToken(ctx, tok), "create token")
	mustErr(t, s.CreateEnrolmentToken(ctx, tok), store.ErrConflict, "create the same token again")
	mustErr(t, s.CreateEnrolmentToken(ctx, store.EnrolmentToken{TokenHash: hash("X"), DeviceID: "nope", ExpiresAt: at(time.Hour)}),
		store.ErrNotFound, "token for an unknown device")
	must(t, s.CreateEnrolmentToken(ctx, store.EnrolmentToken{TokenHash: hash("E"), DeviceID: "d2", CreatedAt: at(0), ExpiresAt: at(time.Minute)}), "create short token")

	_, err := s.UseEnrolmentToken(ctx, hash("unknown"), "d1", at(time.Minute))
	mustErr(t, err, store.ErrNotFound, "use an unknown token")

	// Another device's id does not use (or burn) the token.
	got, err := s.UseEnrolmentToken(ctx, hash("T"), "d2", at(time.Minute))
	mustErr(t, err, store.ErrConflict, "use T for another device")
	if got.DeviceID != "d1" || !got.UsedAt.IsZero() {
		t.Errorf("T refused for d2: %+v, want bound to d1, unused", got)
	}

	got, err = s.UseEnrolmentToken(ctx, hash("T"), "d1", at(time.Minute))
	must(t, err, "use T")
	if got.DeviceID != "d1" || !got.UsedAt.Equal(at(time.Minute)) || !got.ExpiresAt.Equal(at(15*time.Minute)) {
		t.Errorf("used token: %+v", got)
	}
	got, err = s.UseEnrolmentToken(ctx, hash("T"), "d1", at(2*time.Minute))
	mustErr(t, err, store.ErrConflict, "use T again")
	if !got.UsedAt.Equal(at(time.Minute)) {
		t.Errorf("reused token: used at %v, want %v", got.UsedAt, at(time.Minute))
	}

	// Expiry is exclusive: at ExpiresAt the token is refused.
	got, err = s.UseEnrolmentToken(ctx, hash("E"), "d2", at(time.Minute))
	mustErr(t, err, store.ErrConflict, "use an expired token")
	if !got.UsedAt.IsZero() || !got.ExpiresAt.Equal(at(time.Minute)) {
		t.Errorf("expired token: %+v", got)
	}

	// Concurrent uses: exactly one wins.
	must(t, s.CreateEnrolmentToken(ctx, store.EnrolmentToken{TokenHash: hash("C"), DeviceID: "d9", CreatedAt: at(0), ExpiresAt: at(time.Hour)}), "create token C")
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			if _, err := s.UseEnrolmentToken(ctx, hash("C"), "d9", at(time.Minute)); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("concurrent uses of one token: %d succeeded, want 1", wins)
	}

	must(t, s.SetDeviceCertFingerprint(ctx, "d1", "ab12"), "set fingerprint")
	d, err := s.GetDevice(ctx, "d1")
	must(t, err, "get device")
	if d.CertFingerprint != "ab12" {
		t.Errorf("fingerprint: %q, want ab12", d.CertFingerprint)
	}
	mustErr(t, s.SetDeviceCertFingerprint(ctx, "nope", "ab12"), store.ErrNotFound, "fingerprint of an unknown device")
}
