package lab

import (
	"context"

	"vigil/internal/fall"
)

// Evaluate replays every recording through detectors running m with cfg.
// The peak-SMV baseline in the report is tuned on these same recordings
// (an optimistic baseline); use CV for subject-independent numbers.
func Evaluate(ctx context.Context, recs []Recording, m *fall.Model, cfg fall.Config, o Options) (*Report, error) {
	o = o.withDefaults()
	reps, err := ReplayAll(ctx, recs, all(len(recs)), func(*Recording) *fall.Model { return m }, cfg, o)
	if err != nil {
		return nil, err
	}
	r := Summarize(reps, o.RateHz)
	r.Threshold = fall.New(m, cfg).Threshold()
	r.SensitivityBounds = m.SensitivityBounds
	th := baselineThreshold(recs, all(len(recs)))
	r.Baseline = baseline(recs, func(*Recording) float64 { return th })
	r.Baseline.ThresholdG = th
	r.Baseline.Note = "peak-SMV threshold tuned on these same files (optimistic)"
	return r, nil
}

// TrainAll fits a model on every recording, for shipping.
func TrainAll(recs []Recording, p fall.Params, cfg FitConfig) (*fall.Model, error) {
	m, err := Fit(recs, all(len(recs)), p, cfg)
	if err != nil {
		return nil, err
	}
	x, y := examples(recs, all(len(recs)))
	pos := 0
	for _, v := range y {
		if v {
			pos++
		}
	}
	m.Info = map[string]any{
		"subjects":   Subjects(recs, all(len(recs))),
		"recordings": len(recs),
		"examples":   len(x),
		"positives":  pos,
		"seed":       cfg.Train.Seed,
		"trainer":    "gradient-boosted trees, logistic loss",
	}
	return m, nil
}
