package fallwatch_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"vigil/internal/event"
	"vigil/internal/fall"
	"vigil/internal/fall/sisfall"
	"vigil/internal/fallwatch"
	"vigil/internal/sim"
)

// memStates and capture implement the consumer's interfaces in memory; the
// app's own test runs the real store and bus.
type memStates map[string]string

func (m memStates) GetState(_ context.Context, id string) (string, error) {
	s, ok := m[id]
	if !ok {
		return "", fallwatch.ErrNoState
	}
	return s, nil
}

func (m memStates) PutStates(_ context.Context, states map[string]string) error {
	for id, s := range states {
		m[id] = s
	}
	return nil
}

type capture struct {
	evs  []event.Event
	fail bool
}

func (c *capture) PublishEvent(_ context.Context, e *event.Event) error {
	if c.fail {
		return errors.New("bus down")
	}
	c.evs = append(c.evs, *e)
	return nil
}

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// windows replays a committed SisFall recording as 2-second motion
// events of device "d1" at rate Hz.
func windows(t testing.TB, name string, rate int) []event.Event {
	t.Helper()
	rec, err := sisfall.LoadPath(filepath.Join("..", "fall", "testdata", "sisfall", name))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := sim.MotionWindows(rec.Samples, rate, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]event.Event, len(ms))
	for i := range ms {
		out[i] = event.Event{V: event.SchemaVersion, OrgID: "o", DeviceID: "d1", MsgID: "m" + string(rune('a'+i)),
			Type: event.TypeMotion, DeviceTime: t0.Add(time.Duration(i) * 2 * time.Second), ReceivedAt: t0,
			Source: event.SourceMQTT, Motion: &ms[i]}
	}
	return out
}

func newWatcher(t testing.TB, st memStates, pub *capture) *fallwatch.Watcher {
	t.Helper()
	m, err := fall.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	w, err := fallwatch.New(fallwatch.Config{Model: m, States: st, Pub: pub, Now: func() time.Time { return t0 },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

const (
	fallRec = "SA03/F02_SA03_R02.txt.bz2"
	adlRec  = "SE03/D11_SE03_R03.txt.bz2"
)

func TestFallDetectedOnceADLNot(t *testing.T) {
	for _, rate := range []int{50, 200} {
		st, pub := memStates{}, &capture{}
		w := newWatcher(t, st, pub)
		evs := windows(t, fallRec, rate)
		// Batches of three windows, as the bus hands them over.
		for i := 0; i < len(evs); i += 3 {
			if _, err := w.Handle(context.Background(), evs[i:min(i+3, len(evs))]); err != nil {
				t.Fatal(err)
			}
		}
		if len(pub.evs) != 1 {
			t.Fatalf("%d Hz: %d falls published, want 1", rate, len(pub.evs))
		}
		f := pub.evs[0]
		if f.Type != event.TypeFall || f.Source != event.SourceDetector || f.DeviceID != "d1" || f.OrgID != "o" ||
			f.Fall == nil || f.Fall.Confidence <= 0.2 || f.Fall.Confidence > 1 {
			t.Errorf("%d Hz: fall event %+v %+v", rate, f, f.Fall)
		}
		if f.DeviceTime.Before(t0) || f.DeviceTime.After(t0.Add(time.Duration(len(evs))*2*time.Second)) {
			t.Errorf("%d Hz: impact time %v outside the recording", rate, f.DeviceTime)
		}
		if st["d1"] == "" {
			t.Errorf("%d Hz: no state saved", rate)
		}
		// A redelivery of everything finds nothing new.
		if _, err := w.Handle(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
		if len(pub.evs) != 1 {
			t.Errorf("%d Hz: redelivery published %d falls in all, want 1", rate, len(pub.evs))
		}

		adl := &capture{}
		w = newWatcher(t, memStates{}, adl)
		if _, err := w.Handle(context.Background(), windows(t, adlRec, rate)); err != nil {
			t.Fatal(err)
		}
		if len(adl.evs) != 0 {
			t.Errorf("%d Hz: daily activity raised %d falls", rate, len(adl.evs))
		}
	}
}

// TestRestartResumes cuts the fall recording at every window boundary: a
// new Watcher on the saved states must find the same fall, once, with the
// same message id as an uninterrupted run.
func TestRestartResumes(t *testing.T) {
	evs := windows(t, fallRec, 50)
	ref := &capture{}
	if _, err := newWatcher(t, memStates{}, ref).Handle(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if len(ref.evs) != 1 {
		t.Fatalf("uninterrupted: %d falls", len(ref.evs))
	}
	for cut := 1; cut < len(evs); cut++ {
		st, pub := memStates{}, &capture{}
		if _, err := newWatcher(t, st, pub).Handle(context.Background(), evs[:cut]); err != nil {
			t.Fatal(err)
		}
		if _, err := newWatcher(t, st, pub).Handle(context.Background(), evs[cut:]); err != nil {
			t.Fatal(err)
		}
		if len(pub.evs) != 1 || pub.evs[0].MsgID != ref.evs[0].MsgID {
			t.Errorf("restart after window %d: falls %v, want one with id %s", cut, pub.evs, ref.evs[0].MsgID)
		}
	}
}

func TestPublishFailureIsAnError(t *testing.T) {
	pub := &capture{fail: true}
	w := newWatcher(t, memStates{}, pub)
	evs := windows(t, fallRec, 50)
	if _, err := w.Handle(context.Background(), evs); err == nil {
		t.Fatal("Handle succeeded with the publisher down; the batch would be acknowledged and the fall lost")
	}
	// The redelivered batch, with the publisher back, must still find it.
	pub.fail = false
	if _, err := w.Handle(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if len(pub.evs) != 1 {
		t.Errorf("%d falls after redelivery, want 1", len(pub.evs))
	}
}

func TestCorruptStateStartsAfresh(t *testing.T) {
	pub := &capture{}
	w := newWatcher(t, memStates{"d1": "not base64!"}, pub)
	if _, err := w.Handle(context.Background(), windows(t, fallRec, 50)); err != nil {
		t.Fatal(err)
	}
	if len(pub.evs) != 1 {
		t.Errorf("%d falls after a corrupt saved state, want 1", len(pub.evs))
	}
}

// TestSensitivityPerWearer: the wearer's sensitivity is applied when a
// device's detector starts and re-read once SensitivityEvery has passed.
// The test model's threshold is 0.999999, which the recording's fall does
// not reach at the operating point, and its bounds ±10: at +10 the fall is
// raised. That makes the setting observable on one recording.
func TestSensitivityPerWearer(t *testing.T) {
	def, err := fall.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	m := *def
	m.SensitivityBounds = [2]float64{-10, 10}
	m.Threshold = 0.999999
	now := t0
	sens, calls := 0.0, 0
	pub := &capture{}
	w, err := fallwatch.New(fallwatch.Config{Model: &m, States: memStates{}, Pub: pub, Now: func() time.Time { return now },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Sensitivity: func(_ context.Context, id string) (float64, error) {
			if id != "d1" {
				t.Errorf("sensitivity asked for %s", id)
			}
			calls++
			return sens, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	evs := windows(t, fallRec, 50)
	if _, err := w.Handle(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if len(pub.evs) != 0 || calls != 1 {
		t.Fatalf("at 0: %d falls, %d lookups; want 0 falls, 1 lookup", len(pub.evs), calls)
	}
	// The same recording again, later in device time: within the minute
	// the old setting holds; after it, the new one.
	again := func(shift time.Duration) {
		t.Helper()
		b := make([]event.Event, len(evs))
		for i, e := range evs {
			e.DeviceTime = e.DeviceTime.Add(shift)
			e.MsgID += shift.String()
			b[i] = e
		}
		if _, err := w.Handle(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	sens = 10
	now = t0.Add(30 * time.Second)
	again(time.Minute)
	if len(pub.evs) != 0 || calls != 1 {
		t.Fatalf("within the minute: %d falls, %d lookups; want 0 and 1", len(pub.evs), calls)
	}
	now = t0.Add(61 * time.Second)
	again(2 * time.Minute)
	if len(pub.evs) != 1 || calls != 2 {
		t.Fatalf("after the minute at +10: %d falls, %d lookups; want 1 and 2", len(pub.evs), calls)
	}
}
