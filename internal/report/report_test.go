package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	nov = mustMonth("2026-11", time.UTC)
	t0  = time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
)

func mustMonth(s string, loc *time.Location) Period {
	p, err := ParseMonth(s, loc)
	if err != nil {
		panic(err)
	}
	return p
}

// raised is a raised alert of kind received at t0+at, activated 1 s
// before; opts change it.
func raised(kind string, at time.Duration, opts ...func(*Fact)) Fact {
	f := Fact{AlertID: kind + at.String(), Kind: kind, Activation: t0.Add(at - time.Second), Received: t0.Add(at), RaisedFor: t0.Add(at)}
	for _, o := range opts {
		o(&f)
	}
	return f
}

// ack acknowledges d after the response clock started.
func ack(d time.Duration) func(*Fact) {
	return func(f *Fact) { f.Acknowledged = f.RaisedFor.Add(d) }
}

// resolve resolves d after the response clock started with an outcome.
func resolve(d time.Duration, outcome string) func(*Fact) {
	return func(f *Fact) {
		if f.Acknowledged.IsZero() {
			f.Acknowledged = f.RaisedFor.Add(d)
		}
		f.Resolved, f.Outcome = f.RaisedFor.Add(d), outcome
	}
}

func present(d time.Duration) func(*Fact) {
	return func(f *Fact) { f.Presented = f.RaisedFor.Add(d) }
}

// cancelledPreAlert: the wearer cancelled it before it reached anyone.
func cancelledPreAlert(f *Fact) {
	f.Cancelled, f.RaisedFor = f.Received.Add(5*time.Second), time.Time{}
}

// cancelledRaised: the wearer cancelled it inside the cancel window.
func cancelledRaised(d time.Duration) func(*Fact) {
	return func(f *Fact) { f.Cancelled = f.RaisedFor.Add(d) }
}

func sec(s float64) *Seconds {
	v := Seconds(s * float64(time.Second))
	return &v
}

func shares(s Stats) []int {
	var out []int
	for _, w := range s.AcknowledgedWithin {
		out = append(out, w.Count)
	}
	return out
}

func TestParseMonth(t *testing.T) {
	ny, err := Zone("America/New_York")
	if err != nil {
		t.Fatal(err) // time/tzdata is embedded: every zone loads
	}
	for _, tc := range []struct {
		in       string
		loc      *time.Location
		from, to string // RFC 3339 in UTC
	}{
		{"2026-11", time.UTC, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
		{"2026-12", time.UTC, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"2028-02", nil, "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"},
		// EDT at the start, EST at the end.
		{"2026-11", ny, "2026-11-01T04:00:00Z", "2026-12-01T05:00:00Z"},
	} {
		p, err := ParseMonth(tc.in, tc.loc)
		if err != nil {
			t.Errorf("ParseMonth(%q): %v", tc.in, err)
			continue
		}
		if got := p.From.UTC().Format(time.RFC3339); got != tc.from {
			t.Errorf("ParseMonth(%q).From = %s, want %s", tc.in, got, tc.from)
		}
		if got := p.To.UTC().Format(time.RFC3339); got != tc.to {
			t.Errorf("ParseMonth(%q).To = %s, want %s", tc.in, got, tc.to)
		}
	}
	for _, bad := range []string{"", "2026", "2026-13", "2026-1", "2026-11-01", "11-2026", "nov", "1999-12", "2026-00"} {
		if _, err := ParseMonth(bad, time.UTC); err == nil {
			t.Errorf("ParseMonth(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"Local", "Mars/Olympus", "../../etc/passwd"} {
		if _, err := Zone(bad); err == nil {
			t.Errorf("Zone(%q) accepted", bad)
		}
	}
}

func TestQuantilesNearestRank(t *testing.T) {
	secs := func(vs ...int) []time.Duration {
		var out []time.Duration
		for _, v := range vs {
			out = append(out, time.Duration(v)*time.Second)
		}
		return out
	}
	oneTo := func(n int) []time.Duration {
		var out []time.Duration
		for i := n; i >= 1; i-- { // unsorted on purpose
			out = append(out, time.Duration(i)*time.Second)
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		in            []time.Duration
		p50, p90, p99 float64
	}{
		{"one", secs(7), 7, 7, 7},
		{"two", secs(9, 1), 1, 9, 9},
		// ranks ceil(1.5)=2, ceil(2.7)=3, ceil(2.97)=3
		{"three", secs(8, 2, 4), 4, 8, 8},
		// ranks 2, 4, 4
		{"four", secs(1, 2, 3, 4), 2, 4, 4},
		{"ten", oneTo(10), 5, 9, 10},
		{"hundred", oneTo(100), 50, 90, 99},
		// ranks ceil(50.5)=51, ceil(90.9)=91, ceil(99.99)=100
		{"hundred and one", oneTo(101), 51, 91, 100},
	} {
		got := quantiles(tc.in)
		want := Quantiles{N: len(tc.in), P50: sec(tc.p50), P90: sec(tc.p90), P99: sec(tc.p99)}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: (-want +got)\n%s", tc.name, d)
		}
	}
	if got := quantiles(nil); got != (Quantiles{}) {
		t.Errorf("no samples: %+v, want all nil", got)
	}
}

func TestCompute(t *testing.T) {
	const s = time.Second
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		facts []Fact
		check func(t *testing.T, r Report)
	}{
		{
			name: "within limits are inclusive; never acknowledged is not within",
			facts: []Fact{
				raised("sos", 0, ack(10*s)),
				raised("sos", 1*s, ack(10*s+ms)),
				raised("sos", 2*s, ack(40*s)),
				raised("sos", 3*s, ack(60*s)),
				raised("sos", 4*s, ack(180*s)),
				raised("sos", 5*s, ack(180*s+ms)),
				raised("sos", 6*s), // still raised: nobody acknowledged it
			},
			check: func(t *testing.T, r Report) {
				if got, want := shares(r.Total), []int{1, 3, 4, 5}; !cmp.Equal(got, want) {
					t.Errorf("within 10/40/60/180 s = %v, want %v", got, want)
				}
				if r.Total.Raised != 7 || r.Total.Acknowledged != 6 || r.Total.Open != 7 {
					t.Errorf("raised %d acknowledged %d open %d, want 7 6 7", r.Total.Raised, r.Total.Acknowledged, r.Total.Open)
				}
				if got, want := *r.Total.AcknowledgedWithin[1].Share, 3.0/7; got != want {
					t.Errorf("share within 40 s = %v, want %v", got, want)
				}
				// acks 10, 10.001, 40, 60, 180, 180.001: ranks 3, 6, 6.
				want := Quantiles{N: 6, P50: sec(40), P90: sec(180.001), P99: sec(180.001)}
				if d := cmp.Diff(want, r.Total.TimeToAcknowledge); d != "" {
					t.Errorf("time to acknowledge (-want +got)\n%s", d)
				}
			},
		},
		{
			name: "cancelled pre-alerts are not raised; cancels after raising count as not acknowledged",
			facts: []Fact{
				raised("fall", 0, ack(5*s)),
				raised("fall", 1*s, cancelledPreAlert),
				raised("fall", 2*s, cancelledPreAlert),
				raised("fall", 3*s, cancelledRaised(8*s)),
			},
			check: func(t *testing.T, r Report) {
				got := r.Total
				if got.Alerts != 4 || got.Raised != 2 || got.Cancelled != 3 || got.CancelledPreAlert != 2 || got.Open != 1 {
					t.Errorf("alerts %d raised %d cancelled %d (pre-alert %d) open %d, want 4 2 3 2 1",
						got.Alerts, got.Raised, got.Cancelled, got.CancelledPreAlert, got.Open)
				}
				if c := shares(got); !cmp.Equal(c, []int{1, 1, 1, 1}) {
					t.Errorf("within = %v, want 1 of 2 raised everywhere", c)
				}
				if *got.AcknowledgedWithin[0].Share != 0.5 {
					t.Errorf("share within 10 s = %v, want 0.5", *got.AcknowledgedWithin[0].Share)
				}
				// Every cancel is a false alarm: 3 of 4.
				if got.FalseAlarmRate == nil || *got.FalseAlarmRate != 0.75 {
					t.Errorf("false alarm rate = %v, want 0.75", got.FalseAlarmRate)
				}
			},
		},
		{
			name: "false alarm rate, resolve and present times",
			facts: []Fact{
				raised("sos", 0, present(1*s), resolve(30*s, "false_alarm")),
				raised("sos", 1*s, present(2*s), resolve(60*s, "false_alarm")),
				raised("sos", 2*s, present(3*s), ack(4*s), resolve(90*s, "assisted")),
				raised("sos", 3*s, present(500*ms), ack(6*s), resolve(120*s, "emergency_services")),
				raised("sos", 4*s, cancelledPreAlert),
			},
			check: func(t *testing.T, r Report) {
				got := r.Total
				if got.FalseAlarms != 2 || got.Resolved != 4 || got.Open != 0 || got.Acknowledged != 4 {
					t.Errorf("false alarms %d resolved %d open %d acknowledged %d, want 2 4 0 4", got.FalseAlarms, got.Resolved, got.Open, got.Acknowledged)
				}
				if *got.FalseAlarmRate != 3.0/5 {
					t.Errorf("false alarm rate = %v, want 3/5", *got.FalseAlarmRate)
				}
				if d := cmp.Diff(Quantiles{N: 4, P50: sec(60), P90: sec(120), P99: sec(120)}, got.TimeToResolve); d != "" {
					t.Errorf("time to resolve (-want +got)\n%s", d)
				}
				if d := cmp.Diff(Quantiles{N: 4, P50: sec(1), P90: sec(3), P99: sec(3)}, got.TimeToPresent); d != "" {
					t.Errorf("time to present (-want +got)\n%s", d)
				}
				// Activation is 1 s before receipt for every alert (cancelled ones too).
				if d := cmp.Diff(Quantiles{N: 5, P50: sec(1), P90: sec(1), P99: sec(1)}, got.TimeToReceive); d != "" {
					t.Errorf("time to receive (-want +got)\n%s", d)
				}
			},
		},
		{
			name: "per kind, sorted by name, adding up to the total",
			facts: []Fact{
				raised("sos", 0, ack(5*s)),
				raised("missed_checkin", 1*s, ack(50*s)),
				raised("sos", 2*s, ack(15*s)),
				raised("fall", 3*s, cancelledPreAlert),
			},
			check: func(t *testing.T, r Report) {
				var kinds []string
				for _, k := range r.Kinds {
					kinds = append(kinds, k.Kind)
				}
				if want := []string{"fall", "missed_checkin", "sos"}; !cmp.Equal(kinds, want) {
					t.Fatalf("kinds %v, want %v", kinds, want)
				}
				if r.Total.Kind != TotalKind || r.Total.Alerts != 4 || r.Total.Raised != 3 {
					t.Errorf("total %s: %d alerts %d raised, want 4 and 3", r.Total.Kind, r.Total.Alerts, r.Total.Raised)
				}
				if got := shares(r.Kinds[2]); !cmp.Equal(got, []int{1, 2, 2, 2}) {
					t.Errorf("sos within = %v, want [1 2 2 2]", got)
				}
				if got := shares(r.Kinds[1]); !cmp.Equal(got, []int{0, 0, 1, 1}) {
					t.Errorf("missed_checkin within = %v, want [0 0 1 1]", got)
				}
				if f := r.Kinds[0]; f.Raised != 0 || f.AcknowledgedWithin[0].Share != nil || f.Targets[0].Met != nil || f.TimeToAcknowledge.N != 0 {
					t.Errorf("fall (nothing raised): %+v, want no shares, no verdicts", f)
				}
				if got := shares(r.Total); !cmp.Equal(got, []int{1, 2, 3, 3}) {
					t.Errorf("total within = %v, want [1 2 3 3]", got)
				}
			},
		},
		{
			name: "only alerts received in the month",
			facts: []Fact{
				{AlertID: "oct", Kind: "sos", Received: nov.From.Add(-time.Nanosecond), RaisedFor: nov.From.Add(-time.Nanosecond)},
				{AlertID: "first", Kind: "sos", Received: nov.From, RaisedFor: nov.From, Acknowledged: nov.From.Add(time.Second)},
				{AlertID: "last", Kind: "sos", Received: nov.To.Add(-time.Nanosecond), RaisedFor: nov.To.Add(-time.Nanosecond)},
				{AlertID: "dec", Kind: "sos", Received: nov.To, RaisedFor: nov.To},
			},
			check: func(t *testing.T, r Report) {
				if r.Total.Alerts != 2 || r.Total.Acknowledged != 1 {
					t.Errorf("alerts %d acknowledged %d, want 2 and 1", r.Total.Alerts, r.Total.Acknowledged)
				}
			},
		},
		{
			name: "nothing: no shares, no verdicts, no rate",
			check: func(t *testing.T, r Report) {
				if r.Total.Alerts != 0 || r.Total.FalseAlarmRate != nil || r.Total.Met(StandardBS8484) != nil || len(r.Kinds) != 0 || r.Kinds == nil {
					t.Errorf("empty report: %+v", r)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, Compute("acme", nov, tc.facts))
		})
	}
}

// TestTargets checks the verdicts at exactly the BS 8484 and telecare
// shares and one alert short of them.
func TestTargets(t *testing.T) {
	// n raised alerts, fast of them acknowledged in 5 s, slow in 30 s, the
	// rest in 100 s.
	build := func(n, fast, slow, mid int) []Fact {
		var fs []Fact
		for i := range n {
			d := 300 * time.Second
			switch {
			case i < fast:
				d = 5 * time.Second
			case i < fast+slow:
				d = 30 * time.Second
			case i < fast+slow+mid:
				d = 100 * time.Second
			}
			fs = append(fs, raised("sos", time.Duration(i)*time.Minute, ack(d)))
		}
		return fs
	}
	for _, tc := range []struct {
		name     string
		facts    []Fact
		met      []bool // 10 s, 40 s, 60 s, 180 s
		bs, tele bool
	}{
		// 200 raised: 160 within 10 s (80 %), 197 within 40 s (98.5 %).
		{"exactly BS 8484", build(200, 160, 37, 3), []bool{true, true, true, true}, true, true},
		{"BS 8484 one short at 10 s", build(200, 159, 38, 3), []bool{false, true, true, true}, false, true},
		{"BS 8484 one short at 40 s", build(200, 160, 36, 4), []bool{true, false, true, true}, false, true},
		// 200 raised: 195 within 60 s (97.5 %), 198 within 180 s (99 %).
		{"exactly telecare", build(200, 195, 0, 3), []bool{true, false, true, true}, false, true},
		{"telecare one short at 60 s", build(200, 194, 0, 4), []bool{true, false, false, true}, false, false},
		{"telecare one short at 180 s", build(200, 195, 0, 2), []bool{true, false, true, false}, false, false},
	} {
		r := Compute("acme", nov, tc.facts)
		var met []bool
		for _, tg := range r.Total.Targets {
			met = append(met, *tg.Met)
		}
		if !cmp.Equal(met, tc.met) {
			t.Errorf("%s: met %v, want %v (within %v)", tc.name, met, tc.met, shares(r.Total))
		}
		if got := *r.Total.Met(StandardBS8484); got != tc.bs {
			t.Errorf("%s: BS 8484 met = %v, want %v", tc.name, got, tc.bs)
		}
		if got := *r.Total.Met(StandardTelecare); got != tc.tele {
			t.Errorf("%s: telecare met = %v, want %v", tc.name, got, tc.tele)
		}
	}
}

func TestFromAlert(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	base := store.Alert{ID: "a1", Kind: "sos", CauseTime: at(-2), RaisedAt: at(0)}
	with := func(f func(*store.Alert)) store.Alert { a := base; f(&a); return a }
	deliveries := []store.Delivery{
		{Channel: "sms", Status: store.DeliverySent, DoneAt: at(4)},
		{Channel: "email", Status: store.DeliveryFailed, DoneAt: at(1)},
		{Channel: "console", Status: store.DeliverySent, DoneAt: at(2)},
		{Channel: "webhook", Status: store.DeliveryPending},
	}
	for _, tc := range []struct {
		name string
		a    store.Alert
		ds   []store.Delivery
		want Fact
	}{
		{"raised", with(func(a *store.Alert) { a.State = store.AlertRaised }), deliveries,
			Fact{AlertID: "a1", Kind: "sos", Activation: at(-2), Received: at(0), RaisedFor: at(0), Presented: at(2)}},
		{"pre-alert raised at its end, then acknowledged", with(func(a *store.Alert) {
			a.State, a.PendingUntil, a.AcknowledgedAt = store.AlertAcknowledged, at(30), at(35)
		}), nil, Fact{AlertID: "a1", Kind: "sos", Activation: at(-2), Received: at(0), RaisedFor: at(30), Acknowledged: at(35)}},
		{"pre-alert still pending", with(func(a *store.Alert) { a.State, a.PendingUntil = store.AlertPending, at(30) }), nil,
			Fact{AlertID: "a1", Kind: "sos", Activation: at(-2), Received: at(0)}},
		{"pre-alert cancelled", with(func(a *store.Alert) {
			a.State, a.PendingUntil, a.ClosedAt = store.AlertCancelled, at(30), at(12)
		}), nil, Fact{AlertID: "a1", Kind: "sos", Activation: at(-2), Received: at(0), Cancelled: at(12)}},
		{"cancelled after raising", with(func(a *store.Alert) {
			a.State, a.PendingUntil, a.CancelUntil, a.ClosedAt = store.AlertCancelled, at(30), at(90), at(40)
		}), nil, Fact{AlertID: "a1", Kind: "sos", Activation: at(-2), Received: at(0), RaisedFor: at(30), Cancelled: at(40)}},
		{"resolved", with(func(a *store.Alert) {
			a.State, a.AcknowledgedAt, a.ClosedAt, a.Outcome = store.AlertResolved, at(8), at(600), "assisted"
		}), deliveries[:2], Fact{AlertID: "a1", Kind: "sos", Activation: at(-2), Received: at(0), RaisedFor: at(0),
			Presented: at(4), Acknowledged: at(8), Resolved: at(600), Outcome: "assisted"}},
	} {
		if d := cmp.Diff(tc.want, FromAlert(tc.a, tc.ds)); d != "" {
			t.Errorf("%s: (-want +got)\n%s", tc.name, d)
		}
	}
}

// TestFormats pins the JSON field names, the CSV columns and the text
// table against testdata (go test -update rewrites them).
func TestFormats(t *testing.T) {
	const s = time.Second
	facts := []Fact{
		raised("sos", 0, present(1*s), ack(8*s), resolve(300*s, "assisted")),
		raised("sos", 1*time.Hour, present(2*s), ack(45*s), resolve(20*time.Minute, "false_alarm")),
		raised("sos", 2*time.Hour, cancelledPreAlert),
		raised("missed_checkin", 3*time.Hour, present(1500*time.Millisecond), ack(9500*time.Millisecond)),
		raised("missed_checkin", 4*time.Hour),
	}
	r := Compute("acme", nov, facts)
	var js, csv, text bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	if err := WriteCSV(&csv, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteText(&text, r); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"report.json": js.Bytes(), "report.csv": csv.Bytes(), "report.txt": text.Bytes()} {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update)", err)
		}
		if d := cmp.Diff(string(want), string(got)); d != "" {
			t.Errorf("%s (-want +got)\n%s", name, d)
		}
	}
	// The JSON reads back into a Report with the same numbers.
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(r, back); d != "" {
		t.Errorf("JSON round trip (-want +got)\n%s", d)
	}
	if lines := strings.Count(csv.String(), "\n"); lines != 1+len(r.Kinds)+1 {
		t.Errorf("CSV has %d lines, want header + %d kinds + total", lines, len(r.Kinds))
	}
}

func TestHuman(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"}, {1500 * time.Millisecond, "1.5s"}, {59940 * time.Millisecond, "59.9s"}, {5 * time.Minute, "5m"},
		{20 * time.Minute, "20m"}, {10*time.Minute + 30*time.Second, "10m30s"}, {time.Hour, "1h"}, {time.Hour + 10*time.Minute, "1h10m"},
		{2*time.Hour + 5*time.Second, "2h0m5s"},
	} {
		if got := human(Seconds(tc.in)); got != tc.want {
			t.Errorf("human(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
