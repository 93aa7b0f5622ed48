package event_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/event"
)

// addCorpus seeds f with the FuzzDecode and FuzzDecodeBatch corpora, the
// valid message of every type and its bus encoding.
func addCorpus(f *testing.F) {
	for _, dir := range []string{"testdata/fuzz/FuzzDecode", "testdata/fuzz/FuzzDecodeBatch"} {
		files, err := filepath.Glob(filepath.Join(dir, "*"))
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			_, line, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
			s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")"))
			if err != nil {
				f.Fatalf("%s: %v", name, err)
			}
			f.Add([]byte(s))
		}
	}
	dec := event.NewDecoder(event.Limits{})
	for _, typ := range event.Types {
		m := valid(typ)
		f.Add(encode(f, m))
		ev, err := dec.Decode(encode(f, m), origin, now)
		if err != nil {
			f.Fatal(err)
		}
		ev.Late = true
		b, err := event.Marshal(&ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"id":"a","ts":"2026-11-29T11:59:30+01:00","type":"motion","motion":{"rate_hz":1e1,"accel":[[],[1E-7,-0,0.5e+2]],"gyro":[]}}`))
	f.Add([]byte(`{"v":1,"org_id":"<o>","device_id":"d\u00e9","msg_id":"m","type":"x","device_time":"2026-11-29T11:59:30Z","received_at":"0001-01-01T00:00:00Z","source":"s"}`))
	f.Add([]byte(` {"V":1, "id" : "a" , "position":null, "position":{"lat":1e400}} `))
}

// FuzzFastPath holds the hand-written decoders and encoder to
// encoding/json: what the fast decoders accept, encoding/json (with
// unknown fields refused) decodes to the same value; whatever
// encoding/json decodes to an Event, the fast encoder prints byte for
// byte as json.Marshal does, or leaves to it.
func FuzzFastPath(f *testing.F) {
	addCorpus(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var fm, sm event.Message
		if event.FastMessage(b, &fm) {
			if err := event.StrictUnmarshal(b, &sm); err != nil {
				t.Fatalf("fast path accepted a message encoding/json refuses (%v):\n%s", err, b)
			}
			if diff := cmp.Diff(sm, fm); diff != "" {
				t.Fatalf("message (-encoding/json +fast):\n%s\n%s", diff, b)
			}
		}
		var fe, se event.Event
		strictErr := event.StrictUnmarshal(b, &se)
		if event.FastEvent(b, &fe) {
			if strictErr != nil {
				t.Fatalf("fast path accepted an event encoding/json refuses (%v):\n%s", strictErr, b)
			}
			if diff := cmp.Diff(se, fe); diff != "" {
				t.Fatalf("event (-encoding/json +fast):\n%s\n%s", diff, b)
			}
		}
		if strictErr != nil {
			var loose event.Event
			if json.Unmarshal(b, &loose) != nil {
				return
			}
			se = loose
		}
		want, wantErr := json.Marshal(&se)
		prefix := []byte("prefix")
		got, ok := event.AppendEvent(prefix, &se)
		if !ok {
			return
		}
		if wantErr != nil {
			t.Fatalf("fast encoder printed what json.Marshal refuses (%v): %s", wantErr, got)
		}
		if !bytes.Equal(got[len(prefix):], want) {
			t.Fatalf("fast encoder:\n got %s\nwant %s", got[len(prefix):], want)
		}
	})
}

// TestMarshalMatchesEncodingJSON covers the encoder's number formats and
// its fallback on strings that need escaping.
func TestMarshalMatchesEncodingJSON(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	n := -97
	base := event.Event{V: 1, OrgID: "o", DeviceID: "d", MsgID: "m", Type: event.TypeMotion,
		DeviceTime: now, ReceivedAt: now.Add(time.Nanosecond), Source: event.SourceHTTP}
	tests := []func(e *event.Event){
		func(e *event.Event) {},
		func(e *event.Event) {
			e.Late = true
			e.Position = &event.Position{Lat: 1e-7, Lon: -179.99999999999, AccuracyM: 1e21, SpeedMPS: f(0), HeadingDeg: f(359.9),
				AltitudeM: f(-1e-300), FixTime: now.In(time.FixedZone("", 5400))}
		},
		func(e *event.Event) { e.Heartbeat = &event.Heartbeat{} },
		func(e *event.Event) { e.Heartbeat = &event.Heartbeat{SignalDBm: &n} },
		func(e *event.Event) { e.Battery = &event.Battery{Percent: 100, Charging: true} },
		func(e *event.Event) { e.Button = &event.Button{Kind: event.ButtonCancel, Code: "12"} },
		func(e *event.Event) { e.Button = &event.Button{Kind: "<&>", Code: "\u2028é\x00\xff"} },
		func(e *event.Event) { e.Motion = &event.Motion{RateHz: 50, Gyro: [][]float64{}} },
		func(e *event.Event) {
			e.Motion = &event.Motion{RateHz: 123456789e13, Accel: [][]float64{nil, {}, {1, 2.5e-7, -3e22}}, Gyro: [][]float64{{1}}}
		},
		func(e *event.Event) { e.Fall = &event.Fall{Confidence: 0.875} },
		func(e *event.Event) { e.DeviceTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		func(e *event.Event) { e.Fall = &event.Fall{Confidence: -0.0} },
	}
	for i, mutate := range tests {
		e := base
		mutate(&e)
		want, wantErr := json.Marshal(&e)
		got, err := event.Marshal(&e)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("case %d: got error %v, want %v", i, err, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	dec := event.NewDecoder(event.Limits{})
	// What vigil bench sends.
	payload := []byte(`{"v":1,"id":"r3-12345","ts":"2026-11-29T11:59:59.5Z","type":"position","position":{"lat":53.80012,"lon":-1.55,"accuracy_m":8,"speed_mps":1.4}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decode(payload, origin, now); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEvent(b *testing.B) event.Event {
	dec := event.NewDecoder(event.Limits{})
	ev, err := dec.Decode([]byte(`{"v":1,"id":"r3-12345","ts":"2026-11-29T11:59:59.5Z","type":"position","position":{"lat":53.80012,"lon":-1.55,"accuracy_m":8,"speed_mps":1.4}}`), origin, now)
	if err != nil {
		b.Fatal(err)
	}
	return ev
}

func BenchmarkMarshal(b *testing.B) {
	ev := benchEvent(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.Marshal(&ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	ev := benchEvent(b)
	data, err := event.Marshal(&ev)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}
