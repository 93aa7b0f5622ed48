package firmware_test

import (
	"testing"
	"time"

	"vigil/internal/firmware"
)

// FuzzDecodeReport: a device's status report never panics the decoder and
// anything it accepts is valid.
func FuzzDecodeReport(f *testing.F) {
	f.Add([]byte(`{"version":"1.1.0","state":"installed"}`))
	f.Add([]byte(`{"version":"1.1.0","state":"failed","error":"x","refusal":"rollback","sha256":"00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := firmware.DecodeReport(b)
		if err == nil {
			if err := firmware.ValidateReport(r); err != nil {
				t.Fatalf("accepted an invalid report: %v", err)
			}
		}
	})
}

// FuzzVerifyRelease: uploaded metadata (outside bytes) never panics the
// verifier, and nothing unsigned is accepted.
func FuzzVerifyRelease(f *testing.F) {
	online, err := firmware.GenerateSigner()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"signed":{"_type":"root","version":1},"signatures":[]}`), []byte(`{"signed":{"_type":"targets","version":1,"targets":{}},"signatures":[]}`))
	f.Add([]byte(`{}`), []byte(`[]`))
	f.Fuzz(func(t *testing.T, root, targets []byte) {
		_, err := firmware.VerifyRelease(nil, firmware.Bundle{Roots: [][]byte{root}, Targets: targets}, online.Key(), time.Now())
		if err == nil {
			t.Fatal("accepted a release no release key signed")
		}
	})
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.2.3", "v0.0.1", "1.10.0", "01.1.1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := firmware.ParseVersion(s)
		if err != nil {
			return
		}
		w, err := firmware.ParseVersion(v.String())
		if err != nil || w != v {
			t.Fatalf("%q → %v → %v, %v", s, v, w, err)
		}
	})
}
