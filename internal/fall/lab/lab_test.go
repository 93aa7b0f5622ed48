package lab

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"strings"
	"testing"

	"vigil/internal/fall"
	"vigil/internal/fall/sisfall"
)

const testdata = "../testdata/sisfall"

func TestFoldsKeepSubjectsApartWithBothGroups(t *testing.T) {
	var subjects []string
	for _, s := range []string{"SA02", "SA03", "SA04", "SA07", "SA08", "SA09", "SA12", "SA13", "SA14", "SA15", "SE01", "SE02", "SE03", "SE04", "SE08"} {
		subjects = append(subjects, s)
	}
	f := Folds(subjects, 5, 1)
	if len(f) != len(subjects) {
		t.Fatalf("%d subjects assigned, want %d", len(f), len(subjects))
	}
	young, old := make([]int, 5), make([]int, 5)
	for s, k := range f {
		if s[1] == 'E' {
			old[k]++
		} else {
			young[k]++
		}
	}
	for k := range 5 {
		if young[k] != 2 || old[k] != 1 {
			t.Errorf("fold %d: %d young, %d elderly; want 2 and 1", k, young[k], old[k])
		}
	}
	g := Folds(subjects, 5, 1)
	for s := range f {
		if f[s] != g[s] {
			t.Fatal("same seed, different folds")
		}
	}
}

func TestResampleAverages(t *testing.T) {
	in := [][3]float32{{0, 0, 0}, {1, 2, 3}, {2, 4, 6}, {3, 6, 9}, {9, 9, 9}}
	got := Resample(in, 200, 50)
	if len(got) != 1 || got[0] != [3]float32{1.5, 3, 4.5} {
		t.Errorf("got %v, want one block of the mean", got)
	}
	if got := Resample(in, 200, 200); len(got) != len(in) {
		t.Errorf("same rate changed the length: %d", len(got))
	}
}

func TestOperatingPoint(t *testing.T) {
	s := []scored{{-3, false}, {-2, false}, {-1, false}, {0.5, false}, {1, true}, {2, true}, {3, true}}
	th, lo, hi := operatingPoint(s)
	if th <= 0.5 || th >= 1 {
		t.Errorf("threshold %v, want between the best negative (0.5) and the worst fall (1)", th)
	}
	if se, sp := rates(s, th); se != 1 || sp != 1 {
		t.Errorf("at the threshold: sens %v spec %v", se, sp)
	}
	if lo > 0 || hi < 0 {
		t.Errorf("bounds [%v, %v] exclude 0", lo, hi)
	}
}

func TestEvaluateTestdata(t *testing.T) {
	m, err := fall.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	recs, err := Load(context.Background(), testdata, fall.DefaultParams(), Options{RateHz: 50, Progress: func(done, total int) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || calls != 2 {
		t.Fatalf("%d recordings, %d progress calls; want 2 and 2", len(recs), calls)
	}
	for _, r := range recs {
		n := 0
		for _, l := range r.Label {
			if l == 1 {
				n++
			}
		}
		if want := map[bool]int{true: 1, false: 0}[r.Fall()]; n != want {
			t.Errorf("%s: %d positive training candidates, want %d", r.Path, n, want)
		}
	}
	rep, err := Evaluate(context.Background(), recs, m, fall.Config{}, Options{RateHz: 50})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != 2 || rep.Falls != 1 || rep.ADLs != 1 || rep.Sensitivity != 1 || rep.Specificity != 1 || rep.F1 != 1 {
		t.Errorf("metrics %+v", rep.Metrics)
	}
	if rep.LatencyP95Ms <= 0 || rep.LatencyP95Ms > 3000 {
		t.Errorf("latency p95 %v ms", rep.LatencyP95Ms)
	}
	if rep.Young.Falls != 1 || rep.Elderly.ADLs != 1 || len(rep.Activities) != 2 {
		t.Errorf("groups: young %+v elderly %+v activities %+v", rep.Young, rep.Elderly, rep.Activities)
	}
	if p := rep.At(0); p.Sensitivity != 1 || p.Specificity != 1 {
		t.Errorf("sweep at 0: %+v", p)
	}
	var text bytes.Buffer
	if err := rep.Print(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"young (SA)", "elderly (SE)", "F02", "D11", "baseline"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, text.String())
		}
	}
	var img bytes.Buffer
	if err := rep.Plot(&img); err != nil {
		t.Fatal(err)
	}
	if p, err := png.Decode(&img); err != nil || p.Bounds().Dx() != plotW {
		t.Errorf("plot: %v", err)
	}
	if _, err := Load(context.Background(), testdata, fall.DefaultParams(), Options{RateHz: 60}); err == nil {
		t.Error("a rate that does not divide 200 was accepted")
	}
}

func TestMetricsCountFalseAlarmsPerHour(t *testing.T) {
	adl := &Recording{File: sisfall.File{Subject: "SE01", Activity: "D01"}, Seconds: 1800}
	fl := &Recording{File: sisfall.File{Subject: "SA01", Activity: "F01"}, Seconds: 15, PeakT: 5e9}
	reps := []Replay{
		{Rec: adl, Decisions: []fall.Decision{{Fall: true}, {Fall: false}, {Fall: true}}, Margin: 1},
		{Rec: fl, Decisions: []fall.Decision{{Fall: false, T: 1e9}, {Fall: true, T: 7e9}}, Margin: 2},
	}
	m := metrics(reps, func(*Recording) bool { return true })
	if m.FalseAlarms != 2 || m.FalseAlarmFiles != 1 || math.Abs(m.FalseAlarmsPerHour-4) > 1e-9 {
		t.Errorf("false alarms %+v, want 2 in half an hour", m)
	}
	if m.LatencyP50Ms != 2000 || m.Sensitivity != 1 || m.Specificity != 0 {
		t.Errorf("latency/rates %+v", m)
	}
}
