package gt06_test

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"vigil/internal/gateway/gt06"
)

// FuzzFrames feeds arbitrary bytes through the splitter, the parser, the
// decoder and the event mapping, as a connection does: nothing may panic,
// every cut frame starts with a start mark and ends with the stop mark and
// is at most MaxFrame long, and every event the mapping makes is one the
// device API would accept or refuse with a field error (never a panic).
// Seeds in testdata/fuzz/FuzzFrames are captured frames (login, heartbeat,
// location, SOS alarm, WiFi scan with a wrong length).
func FuzzFrames(f *testing.F) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 64), gt06.MaxFrame)
		sc.Split(gt06.Split)
		for sc.Scan() {
			b := sc.Bytes()
			if len(b) > gt06.MaxFrame || !(bytes.HasPrefix(b, []byte{0x78, 0x78}) || bytes.HasPrefix(b, []byte{0x79, 0x79})) ||
				!bytes.HasSuffix(b, []byte{0x0d, 0x0a}) {
				t.Fatalf("cut %x", b)
			}
			fr, err := gt06.Parse(b)
			if err != nil {
				continue
			}
			m, err := gt06.Decode(fr, 8*time.Hour)
			if err != nil {
				continue
			}
			if m.Fix != nil && m.Fix.Valid && (m.Fix.Lat < -90 || m.Fix.Lat > 90 || m.Fix.Lon < -180 || m.Fix.Lon > 180) {
				t.Fatalf("valid fix out of range: %+v", m.Fix)
			}
			for _, e := range gt06.Events(m, fr, now) {
				if e.ID == "" || len(e.ID) > 64 {
					t.Fatalf("message id %q", e.ID)
				}
			}
		}
	})
}
