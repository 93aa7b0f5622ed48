package lab

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"vigil/internal/fall"
)

// Metrics are the detection figures over a set of recordings.
type Metrics struct {
	Files              int     `json:"files"`
	Falls              int     `json:"falls"`
	ADLs               int     `json:"adls"`
	Detected           int     `json:"detected"`
	FalseAlarmFiles    int     `json:"false_alarm_files"`
	FalseAlarms        int     `json:"false_alarms"`
	ADLHours           float64 `json:"adl_hours"`
	Sensitivity        float64 `json:"sensitivity"`
	Specificity        float64 `json:"specificity"`
	BalancedAccuracy   float64 `json:"balanced_accuracy"`
	F1                 float64 `json:"f1"`
	FalseAlarmsPerHour float64 `json:"false_alarms_per_hour"`
	LatencyP50Ms       float64 `json:"latency_p50_ms"`
	LatencyP95Ms       float64 `json:"latency_p95_ms"`
	LatencyMaxMs       float64 `json:"latency_max_ms"`
}

// Activity is one row of the per-activity table.
type Activity struct {
	Code   string  `json:"code"`
	Fall   bool    `json:"fall"`
	Files  int     `json:"files"`
	Raised int     `json:"raised"` // files with at least one raise
	Rate   float64 `json:"rate"`   // Raised / Files
}

// Point is the operating point at one sensitivity offset.
type Point struct {
	Offset             float64 `json:"offset"`
	Sensitivity        float64 `json:"sensitivity"`
	Specificity        float64 `json:"specificity"`
	FalseAlarmsPerHour float64 `json:"false_alarm_files_per_hour"`
}

// Baseline is the single peak-SMV threshold the detector must beat.
type Baseline struct {
	Note               string   `json:"note"`
	ThresholdG         float64  `json:"threshold_g,omitempty"` // without cross-validation
	Sensitivity        float64  `json:"sensitivity"`
	Specificity        float64  `json:"specificity"`
	BalancedAccuracy   float64  `json:"balanced_accuracy"`
	FalseAlarmsPerHour float64  `json:"false_alarm_files_per_hour"`
	Young              *Metrics `json:"young"`
	Elderly            *Metrics `json:"elderly"`

	reps []Replay
}

// Report is what `vigil fall eval` and `vigil fall train --cv` print.
type Report struct {
	RateHz int `json:"rate_hz"`
	Metrics
	Young      Metrics    `json:"young"`
	Elderly    Metrics    `json:"elderly"`
	Activities []Activity `json:"activities"`
	// Sweep is the sensitivity knob: results at Config.Sensitivity offsets.
	Sweep    []Point   `json:"sensitivity_sweep"`
	Baseline *Baseline `json:"baseline,omitempty"`
	// Cross-validation only.
	Folds          int          `json:"folds,omitempty"`
	Seed           uint64       `json:"seed,omitempty"`
	FoldSubjects   [][]string   `json:"fold_subjects,omitempty"`
	FoldThresholds []float64    `json:"fold_thresholds,omitempty"`
	FoldBounds     [][2]float64 `json:"fold_sensitivity_bounds,omitempty"`
	// Model evaluated (plain eval only).
	Threshold         float64    `json:"threshold,omitempty"`
	SensitivityBounds [2]float64 `json:"sensitivity_bounds,omitzero"`

	reps []Replay
}

// Summarize computes the report of replays at rate Hz.
func Summarize(reps []Replay, rate int) *Report {
	r := &Report{RateHz: rate, reps: reps}
	r.Metrics = metrics(reps, func(*Recording) bool { return true })
	r.Young = metrics(reps, func(x *Recording) bool { return !x.Elderly() })
	r.Elderly = metrics(reps, func(x *Recording) bool { return x.Elderly() })
	by := map[string]*Activity{}
	for _, p := range reps {
		a := by[p.Rec.Activity]
		if a == nil {
			a = &Activity{Code: p.Rec.Activity, Fall: p.Rec.Fall()}
			by[p.Rec.Activity] = a
		}
		a.Files++
		if _, ok := p.Raised(); ok {
			a.Raised++
		}
	}
	for _, a := range by {
		a.Rate = float64(a.Raised) / float64(a.Files)
		r.Activities = append(r.Activities, *a)
	}
	slices.SortFunc(r.Activities, func(a, b Activity) int { return strings.Compare(a.Code, b.Code) })
	for o := -3.0; o <= 3; o += 0.5 {
		r.Sweep = append(r.Sweep, r.At(o))
	}
	return r
}

// At returns the operating point at sensitivity offset o (log-odds).
func (r *Report) At(o float64) Point {
	var tp, p, tn, n int
	var hours float64
	for _, x := range r.reps {
		hit := x.Margin >= -o
		if x.Rec.Fall() {
			p++
			if hit {
				tp++
			}
		} else {
			n++
			hours += x.Rec.Seconds / 3600
			if !hit {
				tn++
			}
		}
	}
	return Point{Offset: o, Sensitivity: ratio(tp, p), Specificity: ratio(tn, n), FalseAlarmsPerHour: float64(n-tn) / max(hours, 1e-9)}
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func metrics(reps []Replay, keep func(*Recording) bool) Metrics {
	var m Metrics
	var lat []float64
	for _, p := range reps {
		if !keep(p.Rec) {
			continue
		}
		m.Files++
		first, hit := p.Raised()
		if p.Rec.Fall() {
			m.Falls++
			if hit {
				m.Detected++
				lat = append(lat, float64(first.T-p.Rec.PeakT)/1e6)
			}
		} else {
			m.ADLs++
			m.ADLHours += p.Rec.Seconds / 3600
			if hit {
				m.FalseAlarmFiles++
				m.FalseAlarms += p.Raises()
			}
		}
	}
	m.Sensitivity = ratio(m.Detected, m.Falls)
	m.Specificity = ratio(m.ADLs-m.FalseAlarmFiles, m.ADLs)
	m.BalancedAccuracy = (m.Sensitivity + m.Specificity) / 2
	switch {
	case m.Falls == 0:
		m.BalancedAccuracy = m.Specificity
	case m.ADLs == 0:
		m.BalancedAccuracy = m.Sensitivity
	}
	if d := 2*m.Detected + m.FalseAlarmFiles + (m.Falls - m.Detected); d > 0 {
		m.F1 = float64(2*m.Detected) / float64(d)
	}
	if m.ADLHours > 0 {
		m.FalseAlarmsPerHour = float64(m.FalseAlarms) / m.ADLHours
	}
	if len(lat) > 0 {
		sort.Float64s(lat)
		m.LatencyP50Ms = quantile(lat, 0.5)
		m.LatencyP95Ms = quantile(lat, 0.95)
		m.LatencyMaxMs = lat[len(lat)-1]
	}
	return m
}

// quantile of sorted xs by the nearest-rank method.
func quantile(xs []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// baseline evaluates a single peak-SMV threshold per recording.
func baseline(recs []Recording, th func(*Recording) float64) *Baseline {
	reps := make([]Replay, len(recs))
	for i := range recs {
		r := &recs[i]
		reps[i] = Replay{Rec: r, Margin: r.PeakG - th(r)}
		if r.PeakG >= th(r) {
			reps[i].Decisions = []fall.Decision{{Fall: true, T: r.PeakT}}
		}
	}
	all := metrics(reps, func(*Recording) bool { return true })
	y := metrics(reps, func(x *Recording) bool { return !x.Elderly() })
	e := metrics(reps, func(x *Recording) bool { return x.Elderly() })
	return &Baseline{
		Sensitivity: all.Sensitivity, Specificity: all.Specificity,
		BalancedAccuracy: all.BalancedAccuracy, FalseAlarmsPerHour: float64(all.FalseAlarmFiles) / max(all.ADLHours, 1e-9),
		Young: &y, Elderly: &e, reps: reps,
	}
}

// pct formats a rate over n cases, or "-" without cases.
func pct(v float64, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*v)
}

// Print writes r as readable tables.
func (r *Report) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	if r.Folds > 0 {
		fmt.Fprintf(w, "%d-fold leave-subjects-out cross-validation (seed %d), replayed at %d Hz\n\n", r.Folds, r.Seed, r.RateHz)
	} else {
		fmt.Fprintf(w, "replayed at %d Hz, threshold %.3f, sensitivity bounds %v\n\n", r.RateHz, r.Threshold, r.SensitivityBounds)
	}
	fmt.Fprintln(tw, "group\tfiles\tfalls\tadls\tsens\tspec\tbal.acc\tF1\tFA/h\tp50 ms\tp95 ms\t")
	row := func(name string, m Metrics) {
		lat := func(v float64) string {
			if m.Detected == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f", v)
		}
		fa, f1 := "-", "-"
		if m.ADLs > 0 {
			fa = fmt.Sprintf("%.3f", m.FalseAlarmsPerHour)
		}
		if m.Falls > 0 {
			f1 = fmt.Sprintf("%.3f", m.F1)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, m.Files, m.Falls, m.ADLs,
			pct(m.Sensitivity, m.Falls), pct(m.Specificity, m.ADLs), pct(m.BalancedAccuracy, m.Files), f1, fa, lat(m.LatencyP50Ms), lat(m.LatencyP95Ms))
	}
	row("all", r.Metrics)
	row("young (SA)", r.Young)
	row("elderly (SE)", r.Elderly)
	if b := r.Baseline; b != nil {
		fmt.Fprintf(tw, "baseline peak SMV\t\t\t\t%.2f%%\t%.2f%%\t%.2f%%\t\t%.3f\t\t\t\n", 100*b.Sensitivity, 100*b.Specificity, 100*b.BalancedAccuracy, b.FalseAlarmsPerHour)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if b := r.Baseline; b != nil {
		fmt.Fprintf(w, "baseline: %s", b.Note)
		if b.ThresholdG > 0 {
			fmt.Fprintf(w, " (%.2f g)", b.ThresholdG)
		}
		fmt.Fprintf(w, "; young sens %s spec %s, elderly sens %s spec %s\n", pct(b.Young.Sensitivity, b.Young.Falls), pct(b.Young.Specificity, b.Young.ADLs),
			pct(b.Elderly.Sensitivity, b.Elderly.Falls), pct(b.Elderly.Specificity, b.Elderly.ADLs))
	}
	fmt.Fprintln(w, "\nper activity (share of files with a raise):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "code\tfiles\traised\trate\t")
	for _, a := range r.Activities {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f%%\t\n", a.Code, a.Files, a.Raised, 100*a.Rate)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nsensitivity knob (log-odds offset):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "offset\tsens\tspec\tFA files/h\t")
	for _, p := range r.Sweep {
		fmt.Fprintf(tw, "%+.1f\t%.2f%%\t%.2f%%\t%.3f\t\n", p.Offset, 100*p.Sensitivity, 100*p.Specificity, p.FalseAlarmsPerHour)
	}
	return tw.Flush()
}
