package fall

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// TrainConfig tunes Train; the zero value gives the defaults.
type TrainConfig struct {
	Seed         uint64  // seeds the row subsampling; same seed, same model
	Trees        int     // boosting rounds; default 200
	Depth        int     // tree depth; default 3
	LearningRate float64 // shrinkage; default 0.1
	Subsample    float64 // fraction of rows per tree; default 0.8
	Lambda       float64 // L2 penalty on leaf values; default 1
	MinHessian   float64 // smallest hessian sum in a leaf; default 1
	Bins         int     // histogram bins per feature; default 64
	// PositiveWeight multiplies the weight of positive examples; default:
	// the ratio of negatives to positives, capped at 10.
	PositiveWeight float64
}

func (c TrainConfig) withDefaults(npos, nneg int) TrainConfig {
	if c.Trees <= 0 {
		c.Trees = 200
	}
	if c.Depth <= 0 {
		c.Depth = 3
	}
	if c.LearningRate <= 0 {
		c.LearningRate = 0.1
	}
	if c.Subsample <= 0 || c.Subsample > 1 {
		c.Subsample = 0.8
	}
	if c.Lambda <= 0 {
		c.Lambda = 1
	}
	if c.MinHessian <= 0 {
		c.MinHessian = 1
	}
	if c.Bins <= 1 || c.Bins > 256 {
		c.Bins = 64
	}
	if c.PositiveWeight <= 0 {
		c.PositiveWeight = min(10, max(1, float64(nneg)/max(1, float64(npos))))
	}
	return c
}

// ErrNoExamples is returned by Train without both classes.
var ErrNoExamples = errors.New("fall: training needs positive and negative examples")

// Train fits gradient-boosted trees with logistic loss to the labelled
// examples and returns a model with params p and threshold 0.5. It is
// deterministic: the same inputs and seed give the same model.
func Train(x []Features, y []bool, p Params, cfg TrainConfig) (*Model, error) {
	if len(x) != len(y) {
		return nil, fmt.Errorf("fall: train: %d examples, %d labels", len(x), len(y))
	}
	npos := 0
	for _, v := range y {
		if v {
			npos++
		}
	}
	if npos == 0 || npos == len(y) {
		return nil, ErrNoExamples
	}
	cfg = cfg.withDefaults(npos, len(y)-npos)
	n := len(x)

	// Quantile cuts per feature, and each example's bin.
	cuts := make([][]float32, NumFeatures)
	bins := make([][]uint8, NumFeatures)
	col := make([]float32, n)
	for f := range NumFeatures {
		for i := range x {
			col[i] = x[i][f]
		}
		s := slices.Clone(col)
		slices.Sort(s)
		var c []float32
		for b := 1; b < cfg.Bins; b++ {
			v := s[b*(n-1)/cfg.Bins]
			if len(c) == 0 || v > c[len(c)-1] {
				c = append(c, v)
			}
		}
		if len(c) > 0 && c[len(c)-1] >= s[n-1] {
			c = c[:len(c)-1]
		}
		cuts[f] = c
		bf := make([]uint8, n)
		for i, v := range col {
			j, _ := slices.BinarySearch(c, v) // first cut ≥ v: v ≤ c[j]
			bf[i] = uint8(j)
		}
		bins[f] = bf
	}

	w := make([]float64, n)
	var wp, wt float64
	for i, v := range y {
		w[i] = 1
		if v {
			w[i] = cfg.PositiveWeight
			wp += w[i]
		}
		wt += w[i]
	}
	base := math.Log(wp / (wt - wp))
	score := make([]float64, n)
	for i := range score {
		score[i] = base
	}
	m := &Model{
		Format: ModelFormat, Version: ModelVersion, Params: p,
		Features: FeatureNames(), Threshold: 0.5, Base: base,
		SensitivityBounds: [2]float64{-1, 1},
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed_fa11))
	g := make([]float64, n)
	h := make([]float64, n)
	rows := make([]int32, 0, n)
	nodes := 1<<(cfg.Depth+1) - 1
	for range cfg.Trees {
		rows = rows[:0]
		for i := range n {
			pr := 1 / (1 + math.Exp(-score[i]))
			t := 0.0
			if y[i] {
				t = 1
			}
			g[i] = w[i] * (pr - t)
			h[i] = w[i] * max(pr*(1-pr), 1e-6)
			if rng.Float64() < cfg.Subsample {
				rows = append(rows, int32(i))
			}
		}
		t := Tree{F: make([]int8, nodes), T: make([]float32, nodes), V: make([]float32, nodes)}
		grow(&t, 0, 0, rows, g, h, bins, cuts, cfg)
		// Update every example's score, sampled or not.
		for i := range n {
			score[i] += float64(t.V[leafOf(&t, bins, cuts, i)])
		}
		m.Trees = append(m.Trees, trim(t))
	}
	return m, nil
}

// leafOf walks tree t for training example i using its bins.
func leafOf(t *Tree, bins [][]uint8, cuts [][]float32, i int) int {
	k := 0
	for t.F[k] >= 0 {
		f := t.F[k]
		// x ≤ T ⇔ bin ≤ index of T among the cuts.
		j, _ := slices.BinarySearch(cuts[f], t.T[k])
		if int(bins[f][i]) <= j {
			k = 2*k + 1
		} else {
			k = 2*k + 2
		}
	}
	return k
}

// grow fills node k of t from rows, splitting until cfg.Depth.
func grow(t *Tree, k, depth int, rows []int32, g, h []float64, bins [][]uint8, cuts [][]float32, cfg TrainConfig) {
	var G, H float64
	for _, i := range rows {
		G += g[i]
		H += h[i]
	}
	leaf := func() {
		t.F[k] = -1
		t.V[k] = float32(-G / (H + cfg.Lambda) * cfg.LearningRate)
	}
	if depth == cfg.Depth || H < 2*cfg.MinHessian {
		leaf()
		return
	}
	parent := G * G / (H + cfg.Lambda)
	bestGain, bestF, bestJ := 1e-9, -1, -1
	var hg, hh [257]float64
	for f := range NumFeatures {
		nc := len(cuts[f])
		if nc == 0 {
			continue
		}
		clear(hg[:nc+1])
		clear(hh[:nc+1])
		bf := bins[f]
		for _, i := range rows {
			hg[bf[i]] += g[i]
			hh[bf[i]] += h[i]
		}
		var gl, hl float64
		for j := range nc {
			gl += hg[j]
			hl += hh[j]
			gr, hr := G-gl, H-hl
			if hl < cfg.MinHessian || hr < cfg.MinHessian {
				continue
			}
			gain := gl*gl/(hl+cfg.Lambda) + gr*gr/(hr+cfg.Lambda) - parent
			if gain > bestGain {
				bestGain, bestF, bestJ = gain, f, j
			}
		}
	}
	if bestF < 0 {
		leaf()
		return
	}
	t.F[k] = int8(bestF)
	t.T[k] = cuts[bestF][bestJ]
	// Partition rows in place: left first.
	bf := bins[bestF]
	l := 0
	for r := range rows {
		if int(bf[rows[r]]) <= bestJ {
			rows[l], rows[r] = rows[r], rows[l]
			l++
		}
	}
	grow(t, 2*k+1, depth+1, rows[:l], g, h, bins, cuts, cfg)
	grow(t, 2*k+2, depth+1, rows[l:], g, h, bins, cuts, cfg)
}

// trim drops the unused nodes below leaves at the end of t, keeping the
// complete layout. Unused nodes inside stay as zero leaves.
func trim(t Tree) Tree {
	used := make([]bool, len(t.F))
	var mark func(int)
	mark = func(k int) {
		used[k] = true
		if t.F[k] >= 0 {
			mark(2*k + 1)
			mark(2*k + 2)
		}
	}
	mark(0)
	last := 0
	for k, u := range used {
		if u {
			last = k
		} else {
			t.F[k], t.T[k], t.V[k] = -1, 0, 0
		}
	}
	return Tree{F: t.F[:last+1], T: t.T[:last+1], V: t.V[:last+1]}
}
