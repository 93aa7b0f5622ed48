package gt06_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/internal/event"
	"vigil/internal/gateway/gt06"
)

type vector struct {
	ID      string          `json:"id"`
	Kind    string          `json:"kind"`
	MsgType string          `json:"msg_type"`
	Frame   string          `json:"frame_hex"`
	Context json.RawMessage `json:"context"`
	Expect  struct {
		Decoded    string         `json:"decoded"`
		Time       string         `json:"time"`
		Lat        *float64       `json:"lat"`
		Lon        *float64       `json:"lon"`
		Attributes map[string]any `json:"attributes"`
		Frames     []string       `json:"frames_hex"`
	} `json:"expect"`
	Derived struct {
		CRCOK *bool  `json:"crc_ok"`
		Reply string `json:"reply"`
		IMEI  string `json:"imei"`
	} `json:"derived"`
}

func vectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/gt06.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var out []vector
	for i, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var v vector
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		out = append(out, v)
	}
	return out
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCRC(t *testing.T) {
	if got := gt06.CRC([]byte("123456789")); got != 0x906e {
		t.Errorf("CRC(123456789) = %#04x, want 0x906e", got)
	}
	// The login ACK from the protocol summary.
	if got := hex.EncodeToString(gt06.Ack(0x01, 0x0009)); got != "78780501000955940d0a" {
		t.Errorf("login ack %s", got)
	}
}

// TestFramingVectors: the splitter cuts each framing vector's stream into
// exactly the frames the reference expects, including frames whose length
// byte is wrong.
func TestFramingVectors(t *testing.T) {
	n := 0
	for _, v := range vectors(t) {
		if v.Kind != "framing" {
			continue
		}
		n++
		sc := bufio.NewScanner(bytes.NewReader(unhex(t, v.Frame)))
		sc.Split(gt06.Split)
		var got []string
		for sc.Scan() {
			got = append(got, hex.EncodeToString(sc.Bytes()))
		}
		if err := sc.Err(); err != nil {
			t.Errorf("%s: %v", v.ID, err)
		}
		if strings.Join(got, ",") != strings.Join(v.Expect.Frames, ",") {
			t.Errorf("%s: frames %v, want %v", v.ID, got, v.Expect.Frames)
		}
	}
	if n < 5 {
		t.Fatalf("%d framing vectors", n)
	}
}

// TestSplitStream: frames arriving in pieces and back to back are cut one
// by one.
func TestSplitStream(t *testing.T) {
	login := unhex(t, "78780d01086471700328358100093f040d0a")
	hb := unhex(t, "78780a13440604000201baaf540d0a")
	stream := append(append(append([]byte{}, login...), hb...), login...)
	r := &slowReader{b: stream}
	sc := bufio.NewScanner(r)
	sc.Split(gt06.Split)
	var got [][]byte
	for sc.Scan() {
		got = append(got, append([]byte(nil), sc.Bytes()...))
	}
	if sc.Err() != nil || len(got) != 3 || !bytes.Equal(got[0], login) || !bytes.Equal(got[1], hb) {
		t.Fatalf("got %x, %v", got, sc.Err())
	}
	// Garbage is an error, not a hang.
	sc = bufio.NewScanner(bytes.NewReader([]byte("GET / HTTP/1.1\r\n\r\n")))
	sc.Split(gt06.Split)
	if sc.Scan() || sc.Err() == nil {
		t.Errorf("HTTP request: scanned %x, err %v", sc.Bytes(), sc.Err())
	}
}

// slowReader returns a byte at a time.
type slowReader struct{ b []byte }

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	p[0], r.b = r.b[0], r.b[1:]
	return 1, nil
}

// supported are the protocol numbers Vigil decodes into events.
var supported = map[string]bool{"0x01": true, "0x10": true, "0x11": true, "0x12": true, "0x13": true, "0x16": true,
	"0x19": true, "0x22": true, "0x23": true, "0x26": true, "0x27": true, "0x37": true, "0xA0": true, "0x08": true}

// TestUplinkVectors replays every captured uplink frame: the frame parses,
// its checksum verdict and the ACK agree with the reference, and for the
// message types Vigil decodes, every frame the reference decodes to a
// position gives a valid fix (exact where the vector says), an SOS alarm
// becomes an SOS press, a low-battery alarm a battery report, and frames
// the reference decodes to nothing give Vigil no position or alarm either.
// Frames of models with their own layouts (context.model) are checked for
// parsing only.
func TestUplinkVectors(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var decoded, positions, exact, alarms int
	for _, v := range vectors(t) {
		if v.Kind != "uplink" {
			continue
		}
		raw := unhex(t, v.Frame)
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Split(gt06.Split)
		if !sc.Scan() {
			if !bytes.HasSuffix(raw, []byte{0x0d, 0x0a}) && sc.Err() != nil {
				continue // a truncated capture: no stop mark, rightly not a frame
			}
			t.Errorf("%s: no frame cut: %v", v.ID, sc.Err())
			continue
		}
		f, err := gt06.Parse(sc.Bytes())
		if err != nil {
			t.Errorf("%s: %v", v.ID, err)
			continue
		}
		if v.Derived.CRCOK != nil && f.HasSerial && len(sc.Bytes()) == len(raw) && f.CRCOK != *v.Derived.CRCOK {
			t.Errorf("%s: CRC ok %v, reference %v", v.ID, f.CRCOK, *v.Derived.CRCOK)
		}
		proto := strings.Fields(v.MsgType + " x x")[1]
		if !strings.HasPrefix(v.MsgType, "7878") || !supported[proto] {
			continue
		}
		m, err := gt06.Decode(f, 0)
		if v.Derived.Reply != "" && !strings.Contains(v.Derived.Reply, "<") && err == nil && m.Acked(f) {
			if got := hex.EncodeToString(gt06.Ack(f.Proto, f.Serial)); got != v.Derived.Reply {
				t.Errorf("%s: ack %s, reference %s", v.ID, got, v.Derived.Reply)
			}
		}
		if len(v.Context) > 0 {
			continue // a model with its own layout
		}
		decoded++
		evs := gt06.Events(m, f, now)
		var pos *event.Position
		var sos, battery bool
		for _, e := range evs {
			if e.Position != nil {
				pos = e.Position
			}
			sos = sos || e.Button != nil && e.Button.Kind == event.ButtonSOS
			battery = battery || e.Battery != nil
		}
		if m.Kind == gt06.KindLogin && m.IMEI != v.Derived.IMEI {
			t.Errorf("%s: IMEI %q, want %q", v.ID, m.IMEI, v.Derived.IMEI)
		}
		switch v.Expect.Decoded {
		case "position", "positions":
			positions++
			if err != nil || m.Fix == nil {
				t.Errorf("%s: want a fix, got %+v %v", v.ID, m, err)
				continue
			}
			if !m.Fix.Valid {
				// The terminal flags the fix invalid (no GPS lock: stale
				// coordinates). Vigil keeps no position from it, where
				// the reference stores one marked invalid.
				if pos != nil {
					t.Errorf("%s: a position from an invalid fix", v.ID)
				}
				continue
			}
			// The captures are from 2011–2020: as positions now they
			// would be refused (device clock before 2020), so the fix is
			// checked as decoded, and as an event at its own time.
			fx := m.Fix
			if fx.Time.Year() < 2000 || fx.Lat < -90 || fx.Lat > 90 || fx.Lon < -180 || fx.Lon > 180 || fx.Lat == 0 && fx.Lon == 0 {
				t.Errorf("%s: fix out of range %+v", v.ID, fx)
			}
			if at := gt06.Events(m, f, fx.Time); fx.Time.After(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) && !slices.ContainsFunc(at, func(e event.Message) bool { return e.Position != nil }) {
				t.Errorf("%s: valid fix, no position event: %+v", v.ID, at)
			}
			if v.Expect.Lat != nil {
				exact++
				wt, _ := time.Parse(time.RFC3339, v.Expect.Time)
				if math.Abs(fx.Lat-*v.Expect.Lat) > 1e-5 || math.Abs(fx.Lon-*v.Expect.Lon) > 1e-5 || !fx.Time.Equal(wt) {
					t.Errorf("%s: fix %v,%v at %v, want %v,%v at %v", v.ID, fx.Lat, fx.Lon, fx.Time, *v.Expect.Lat, *v.Expect.Lon, wt)
				}
			}
		case "none":
			if pos != nil || sos {
				t.Errorf("%s: reference decodes nothing, Vigil made %+v", v.ID, evs)
			}
		}
		switch v.Expect.Attributes["alarm"] {
		case "sos":
			alarms++
			if !sos {
				t.Errorf("%s: SOS alarm not an SOS press: %+v", v.ID, evs)
			}
		case "lowBattery":
			alarms++
			if !battery {
				t.Errorf("%s: low-battery alarm not a battery report: %+v", v.ID, evs)
			}
		}
	}
	t.Logf("%d frames decoded, %d positions (%d exact), %d alarms", decoded, positions, exact, alarms)
	if decoded < 30 || positions < 10 || exact < 1 || alarms < 2 {
		t.Errorf("too few vectors checked: %d decoded, %d positions, %d exact, %d alarms", decoded, positions, exact, alarms)
	}
}
