package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"vigil/internal/fall"
	"vigil/internal/fall/lab"
)

func runFall(ctx context.Context, e env, args []string) error {
	const usage = "vigil fall train --data DIR (--out FILE | --cv K) [--seed N] | vigil fall eval --data DIR [--model FILE] [--rate HZ] [--json] [--plot FILE.png]"
	if len(args) == 0 {
		return usagef(usage)
	}
	switch args[0] {
	case "train":
		return runFallTrain(ctx, e, args[1:])
	case "eval":
		return runFallEval(ctx, e, args[1:])
	}
	return usagef("vigil fall: unknown subcommand %q (want train or eval)", args[0])
}

// fallFlags are the flags train and eval share.
type fallFlags struct {
	data    *string
	rate    *int
	workers *int
	asJSON  *bool
	plot    *string
}

func newFallFlags(fs *flag.FlagSet) fallFlags {
	return fallFlags{
		data:    fs.String("data", "", "folder in the SisFall layout: SA../SE.. subject folders of *.txt or *.txt.bz2 (required)"),
		rate:    fs.Int("rate", 50, "device rate in Hz the 200 Hz recordings are resampled to before replay (25, 40, 50, 100 or 200)"),
		workers: fs.Int("workers", 2, "recordings processed at once"),
		asJSON:  fs.Bool("json", false, "print the report as one JSON object"),
		plot:    fs.String("plot", "", "write the ROC / sensitivity curve to this PNG file"),
	}
}

func (f fallFlags) load(ctx context.Context, e env) ([]lab.Recording, error) {
	if *f.data == "" {
		return nil, usagef("vigil fall: --data is required")
	}
	o := f.options(e, "loading")
	recs, err := lab.Load(ctx, *f.data, fall.DefaultParams(), o)
	if o.Progress != nil {
		fmt.Fprintln(e.stderr)
	}
	return recs, err
}

// options returns the lab options; without --json a progress bar labelled
// what goes to stderr.
func (f fallFlags) options(e env, what string) lab.Options {
	o := lab.Options{RateHz: *f.rate, Workers: *f.workers}
	if !*f.asJSON {
		last := -1
		o.Progress = func(done, total int) {
			const width = 40
			n := done * width / max(total, 1)
			if n == last && done != total {
				return
			}
			last = n
			fmt.Fprintf(e.stderr, "\r%-10s [%s%s] %d/%d", what, strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
		}
	}
	return o
}

func (f fallFlags) report(e env, r *lab.Report) error {
	if *f.plot != "" {
		if err := writePlot(*f.plot, r); err != nil {
			return err
		}
	}
	if *f.asJSON {
		return json.NewEncoder(e.stdout).Encode(r)
	}
	return r.Print(e.stdout)
}

func writePlot(path string, r *lab.Report) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.Plot(fh); err != nil {
		fh.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return fh.Close()
}

func runFallTrain(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("fall train", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	ff := newFallFlags(fs)
	out := fs.String("out", "", "write the trained model to this file")
	seed := fs.Uint64("seed", 1, "random seed: same data and seed give the same model")
	cv := fs.Int("cv", 0, "instead of (or before) writing a model, report K-fold leave-subjects-out cross-validation")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("vigil fall train: unexpected argument %q", fs.Arg(0))
	}
	if *out == "" && *cv == 0 {
		return usagef("vigil fall train: --out FILE or --cv K is required")
	}
	if *cv == 1 || *cv < 0 {
		return usagef("vigil fall train: --cv wants at least 2 folds")
	}
	recs, err := ff.load(ctx, e)
	if err != nil {
		return err
	}
	cfg := lab.FitConfig{Train: fall.TrainConfig{Seed: *seed}}
	if *cv > 0 {
		o := ff.options(e, "replaying")
		r, err := lab.CV(ctx, recs, *cv, *seed, fall.DefaultParams(), cfg, o)
		if o.Progress != nil {
			fmt.Fprintln(e.stderr)
		}
		if err != nil {
			return err
		}
		if err := ff.report(e, r); err != nil {
			return err
		}
	}
	if *out == "" {
		return nil
	}
	m, err := lab.TrainAll(recs, fall.DefaultParams(), cfg)
	if err != nil {
		return err
	}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return err
	}
	if !*ff.asJSON {
		fmt.Fprintf(e.stdout, "model written to %s: %d trees, threshold %.3f, sensitivity bounds %v\n", *out, len(m.Trees), m.Threshold, m.SensitivityBounds)
	}
	return nil
}

func runFallEval(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("fall eval", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	ff := newFallFlags(fs)
	modelPath := fs.String("model", "", "model file (default: the model embedded in this binary)")
	sens := fs.Float64("sensitivity", 0, "per-person sensitivity offset in log-odds, clamped to the model's bounds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("vigil fall eval: unexpected argument %q", fs.Arg(0))
	}
	var m *fall.Model
	var err error
	if *modelPath == "" {
		m, err = fall.DefaultModel()
	} else {
		var b []byte
		if b, err = os.ReadFile(*modelPath); err == nil {
			m, err = fall.ParseModel(b)
		}
	}
	if err != nil {
		return err
	}
	recs, err := ff.load(ctx, e)
	if err != nil {
		return err
	}
	o := ff.options(e, "replaying")
	r, err := lab.Evaluate(ctx, recs, m, fall.Config{Sensitivity: *sens}, o)
	if o.Progress != nil {
		fmt.Fprintln(e.stderr)
	}
	if err != nil {
		return err
	}
	return ff.report(e, r)
}
