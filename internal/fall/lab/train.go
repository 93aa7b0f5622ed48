package lab

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"vigil/internal/fall"
)

// FitConfig tunes Fit.
type FitConfig struct {
	Train fall.TrainConfig
	// InnerFolds is the number of subject folds used inside the training
	// subjects to choose the threshold and sensitivity bounds; default 4.
	InnerFolds int
}

// Subjects returns the distinct subjects of recs[idx] in order.
func Subjects(recs []Recording, idx []int) []string {
	var s []string
	for _, i := range idx {
		if !slices.Contains(s, recs[i].Subject) {
			s = append(s, recs[i].Subject)
		}
	}
	slices.Sort(s)
	return s
}

// Folds assigns each subject to one of k folds: young (SA) and elderly (SE)
// subjects are shuffled separately with seed and dealt in turn, so every
// fold has both whenever there are at least k of each.
func Folds(subjects []string, k int, seed uint64) map[string]int {
	var young, old []string
	for _, s := range subjects {
		if len(s) > 1 && s[1] == 'E' {
			old = append(old, s)
		} else {
			young = append(young, s)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0xf01d))
	rng.Shuffle(len(young), func(i, j int) { young[i], young[j] = young[j], young[i] })
	rng.Shuffle(len(old), func(i, j int) { old[i], old[j] = old[j], old[i] })
	f := make(map[string]int, len(subjects))
	for i, s := range young {
		f[s] = i % k
	}
	// Continue dealing where the young left off so fold sizes stay even.
	for i, s := range old {
		f[s] = (len(young) + i) % k
	}
	return f
}

func all(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// examples gathers the labelled training candidates of recs[idx].
func examples(recs []Recording, idx []int) ([]fall.Features, []bool) {
	var x []fall.Features
	var y []bool
	for _, i := range idx {
		r := &recs[i]
		for k, c := range r.Train {
			if r.Label[k] < 0 {
				continue
			}
			x = append(x, c.Features)
			y = append(y, r.Label[k] == 1)
		}
	}
	return x, y
}

// fileMargin is the largest log-odds of m over any candidate of r (at the
// native rate), relative to probability 0.5.
func fileMargin(m *fall.Model, r *Recording) float64 {
	best := math.Inf(-1)
	for _, c := range r.Train {
		best = max(best, logit(m.Probability(c.Features)))
	}
	return best
}

// Fit trains a model on the candidates of recs[idx]. Its threshold and
// sensitivity bounds are chosen on out-of-fold file scores from an inner
// split of the same training subjects, so no test subject is ever looked at.
func Fit(recs []Recording, idx []int, p fall.Params, cfg FitConfig) (*fall.Model, error) {
	if cfg.InnerFolds <= 1 {
		cfg.InnerFolds = 4
	}
	subjects := Subjects(recs, idx)
	inner := Folds(subjects, cfg.InnerFolds, cfg.Train.Seed+1)
	var scores []scored
	for f := range cfg.InnerFolds {
		var tr, te []int
		for _, i := range idx {
			if inner[recs[i].Subject] == f {
				te = append(te, i)
			} else {
				tr = append(tr, i)
			}
		}
		if len(te) == 0 {
			continue
		}
		x, y := examples(recs, tr)
		m, err := fall.Train(x, y, p, cfg.Train)
		if err != nil {
			return nil, fmt.Errorf("lab: inner fold %d: %w", f, err)
		}
		for _, i := range te {
			scores = append(scores, scored{fileMargin(m, &recs[i]), recs[i].Fall()})
		}
	}
	x, y := examples(recs, idx)
	m, err := fall.Train(x, y, p, cfg.Train)
	if err != nil {
		return nil, err
	}
	th, lo, hi := operatingPoint(scores)
	m.Threshold = 1 / (1 + math.Exp(-th))
	m.SensitivityBounds = [2]float64{lo, hi}
	return m, nil
}

type scored struct {
	v    float64
	fall bool
}

// rates returns sensitivity and specificity when raising at v ≥ t.
func rates(s []scored, t float64) (sens, spec float64) {
	var tp, p, tn, n float64
	for _, e := range s {
		if e.fall {
			p++
			if e.v >= t {
				tp++
			}
		} else {
			n++
			if e.v < t {
				tn++
			}
		}
	}
	return tp / max(p, 1), tn / max(n, 1)
}

// specWeight weighs specificity against sensitivity when choosing the
// threshold; 1 maximises balanced accuracy.
const specWeight = 1.0

// operatingPoint picks the log-odds threshold maximising sensitivity +
// specificity on the out-of-fold scores (the middle of the best interval),
// and the sensitivity bounds: offsets, in steps of 0.25 up to ±3, within
// which the out-of-fold sensitivity stays ≥ 95 % (less sensitive side) and
// the specificity ≥ 97 % (more sensitive side).
func operatingPoint(s []scored) (th, lo, hi float64) {
	var cands []float64
	for _, e := range s {
		if !math.IsInf(e.v, 0) {
			cands = append(cands, e.v)
		}
	}
	sort.Float64s(cands)
	cands = slices.Compact(cands)
	if len(cands) == 0 {
		return 0, -1, 1
	}
	// Thresholds between consecutive scores.
	best, bestI, bestJ := math.Inf(-1), 0, 0
	ts := make([]float64, 0, len(cands)+1)
	ts = append(ts, cands[0]-1)
	for i := 1; i < len(cands); i++ {
		ts = append(ts, (cands[i-1]+cands[i])/2)
	}
	ts = append(ts, cands[len(cands)-1]+1)
	for i, t := range ts {
		se, sp := rates(s, t)
		v := se + specWeight*sp
		switch {
		case v > best+1e-12:
			best, bestI, bestJ = v, i, i
		case v > best-1e-12:
			bestJ = i
		}
	}
	th = (ts[bestI] + ts[bestJ]) / 2
	th = min(max(th, -8), 8)
	for o := -0.25; o >= -3; o -= 0.25 {
		if se, _ := rates(s, th-o); se < 0.95 {
			break
		}
		lo = o
	}
	for o := 0.25; o <= 3; o += 0.25 {
		if _, sp := rates(s, th-o); sp < 0.97 {
			break
		}
		hi = o
	}
	return th, lo, hi
}

// baselineThreshold picks the peak-SMV threshold that maximises
// sensitivity + specificity over recs[idx].
func baselineThreshold(recs []Recording, idx []int) float64 {
	var s []scored
	for _, i := range idx {
		s = append(s, scored{recs[i].PeakG, recs[i].Fall()})
	}
	th, _, _ := operatingPoint(s)
	return th
}

// CV runs k-fold leave-subjects-out cross-validation: for each fold, a model
// (and the peak-SMV baseline threshold) is fitted on the other folds'
// subjects only and the fold's recordings are replayed through it.
func CV(ctx context.Context, recs []Recording, k int, seed uint64, p fall.Params, cfg FitConfig, o Options) (*Report, error) {
	if k < 2 {
		return nil, fmt.Errorf("lab: cross-validation needs at least 2 folds, got %d", k)
	}
	idx := all(len(recs))
	subjects := Subjects(recs, idx)
	if len(subjects) < k {
		return nil, fmt.Errorf("lab: %d folds but only %d subjects", k, len(subjects))
	}
	folds := Folds(subjects, k, seed)
	cfg.Train.Seed = seed
	models := make([]*fall.Model, k)
	base := make([]float64, k)
	for f := range k {
		var tr []int
		for _, i := range idx {
			if folds[recs[i].Subject] != f {
				tr = append(tr, i)
			}
		}
		m, err := Fit(recs, tr, p, cfg)
		if err != nil {
			return nil, fmt.Errorf("lab: fold %d: %w", f, err)
		}
		models[f] = m
		base[f] = baselineThreshold(recs, tr)
	}
	reps, err := ReplayAll(ctx, recs, idx, func(r *Recording) *fall.Model { return models[folds[r.Subject]] }, fall.Config{}, o)
	if err != nil {
		return nil, err
	}
	rep := Summarize(reps, o.withDefaults().RateHz)
	rep.Folds = k
	rep.Seed = seed
	for f := range k {
		var fs []string
		for _, s := range subjects {
			if folds[s] == f {
				fs = append(fs, s)
			}
		}
		rep.FoldSubjects = append(rep.FoldSubjects, fs)
		rep.FoldThresholds = append(rep.FoldThresholds, models[f].Threshold)
		rep.FoldBounds = append(rep.FoldBounds, models[f].SensitivityBounds)
	}
	rep.Baseline = baseline(recs, func(r *Recording) float64 { return base[folds[r.Subject]] })
	rep.Baseline.Note = "peak-SMV threshold fitted on the training folds"
	return rep, nil
}
