package firmware_test

import (
	"context"
	"testing"
)

// BenchmarkUpdateCheckUpToDate is one device's periodic check when
// nothing changed: both repositories refreshed over loopback HTTPS and
// verified (8 metadata fetches, 6 signature checks).
func BenchmarkUpdateCheckUpToDate(b *testing.B) {
	_, _, _, c := setup(b)
	ctx := context.Background()
	if _, err := c.Update(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if res, err := c.Update(ctx); err != nil || res.Installed {
			b.Fatalf("%+v %v", res, err)
		}
	}
}

// BenchmarkVerifyRelease is the server's check of an uploaded release of
// two images, threshold 2.
func BenchmarkVerifyRelease(b *testing.B) {
	r, _, _, _ := setup(b)
	bundle := r.bundle(b)
	for b.Loop() {
		if _, err := firmwareVerify(bundle, r); err != nil {
			b.Fatal(err)
		}
	}
}
