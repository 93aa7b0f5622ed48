package fall

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
)

// ModelFormat and ModelVersion identify the model file format.
const (
	ModelFormat  = "vigil-fall-model"
	ModelVersion = 1
)

//go:embed default_model.json
var defaultModel []byte

// DefaultModel parses the model embedded in the binary. It was trained with
// `vigil fall train` on the SisFall recordings (see docs/falls.md).
func DefaultModel() (*Model, error) { return ParseModel(defaultModel) }

// Model is a trained classifier with the detector geometry it was trained
// with. It is immutable once parsed and shared by every Detector.
type Model struct {
	Format   string   `json:"format"`
	Version  int      `json:"version"`
	Params   Params   `json:"params"`
	Features []string `json:"features"`
	// Threshold is the probability at which a candidate raises a fall.
	Threshold float64 `json:"threshold"`
	// SensitivityBounds is the measured range of Config.Sensitivity.
	SensitivityBounds [2]float64 `json:"sensitivity_bounds"`
	// Base is the initial log-odds; each tree adds to it.
	Base  float64 `json:"base"`
	Trees []Tree  `json:"trees,omitempty"`
	// Info records how the model was made; it plays no part in decisions.
	Info map[string]any `json:"info,omitempty"`
}

// Tree is a complete binary regression tree stored breadth first: node i has
// children 2i+1 (x ≤ T) and 2i+2 (x > T). A node with F = -1 is a leaf of
// value V.
type Tree struct {
	F []int8    `json:"f"`
	T []float32 `json:"t"`
	V []float32 `json:"v"`
}

// ParseModel decodes and checks a model file.
func ParseModel(b []byte) (*Model, error) {
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("fall: parse model: %w", err)
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ErrModel marks a model that cannot be used.
var ErrModel = errors.New("fall: invalid model")

// Check verifies that m is complete and consistent with this code.
func (m *Model) Check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrModel}, a...)...)
	}
	if m.Format != ModelFormat {
		return bad("format %q, want %q", m.Format, ModelFormat)
	}
	if m.Version != ModelVersion {
		return bad("version %d, this build reads version %d", m.Version, ModelVersion)
	}
	if !m.Params.valid() {
		return bad("params out of range: %+v", m.Params)
	}
	if !slices.Equal(m.Features, FeatureNames()) {
		return bad("features %v differ from this build's %v", m.Features, FeatureNames())
	}
	if !(m.Threshold > 0 && m.Threshold < 1) {
		return bad("threshold %v outside (0, 1)", m.Threshold)
	}
	lo, hi := m.SensitivityBounds[0], m.SensitivityBounds[1]
	if !(lo <= 0 && hi >= 0 && lo >= -10 && hi <= 10) {
		return bad("sensitivity bounds %v", m.SensitivityBounds)
	}
	if math.IsNaN(m.Base) || math.IsInf(m.Base, 0) {
		return bad("base %v", m.Base)
	}
	for k, t := range m.Trees {
		n := len(t.F)
		if n == 0 || len(t.T) != n || len(t.V) != n {
			return bad("tree %d: arrays of different lengths", k)
		}
		for i, f := range t.F {
			if f < -1 || int(f) >= NumFeatures {
				return bad("tree %d node %d: feature %d", k, i, f)
			}
			if f >= 0 && 2*i+2 >= n {
				return bad("tree %d node %d: split without children", k, i)
			}
			if v, th := float64(t.V[i]), float64(t.T[i]); math.IsNaN(v) || math.IsInf(v, 0) || math.IsNaN(th) {
				return bad("tree %d node %d: NaN or infinite value", k, i)
			}
		}
	}
	return nil
}

// score returns the model's log-odds that f is a fall.
func (m *Model) score(f *Features) float64 {
	s := m.Base
	for k := range m.Trees {
		t := &m.Trees[k]
		i := 0
		for t.F[i] >= 0 {
			if f[t.F[i]] <= t.T[i] {
				i = 2*i + 1
			} else {
				i = 2*i + 2
			}
		}
		s += float64(t.V[i])
	}
	return s
}

// Probability returns the model's probability that f is a fall.
func (m *Model) Probability(f Features) float64 {
	return 1 / (1 + math.Exp(-m.score(&f)))
}

// Marshal encodes m as a JSON model file: the header indented, one tree per
// line.
func (m *Model) Marshal() ([]byte, error) {
	head := *m
	head.Trees = nil
	b, err := json.MarshalIndent(head, "", " ")
	if err != nil {
		return nil, fmt.Errorf("fall: encode model: %w", err)
	}
	b = bytes.TrimSuffix(bytes.TrimRight(b, "\n"), []byte("}"))
	b = bytes.TrimRight(b, "\n")
	b = append(b, ",\n \"trees\": ["...)
	for i, t := range m.Trees {
		tb, err := json.Marshal(t)
		if err != nil {
			return nil, fmt.Errorf("fall: encode model: %w", err)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n  "...)
		b = append(b, tb...)
	}
	return append(b, "\n ]\n}\n"...), nil
}
