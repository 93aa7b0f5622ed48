package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"vigil/internal/app"
	"vigil/internal/config"
)

// loadConfig parses a subcommand's flags (the shared ones plus its own,
// already registered on fs) with the config precedence rules.
func loadConfig(fs *flag.FlagSet, e env, args []string) (config.Config, error) {
	fs.SetOutput(e.stderr)
	cfg, err := config.Load(fs, args, e.getenv)
	if err != nil {
		return config.Config{}, err
	}
	return cfg, nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServe(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile to `file` until shutdown (diagnostics)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if fs.NArg() > 0 {
		return usagef("vigil serve takes no arguments, got %q", fs.Arg(0))
	}
	log := newLogger(cfg, e.stderr)
	a, err := app.New(ctx, cfg, app.Deps{Logger: log, Out: e.stdout})
	if err != nil {
		return err
	}
	return serveUntilDone(ctx, a, log, e)
}

// serveUntilDone starts the app, says where it listens, and stops it when
// ctx ends or a component fails.
func serveUntilDone(ctx context.Context, a *app.App, log *slog.Logger, e env) error {
	if err := a.Start(); err != nil {
		_ = a.Stop(context.Background())
		return err
	}
	log.Info("vigil serving",
		"mqtt_tls", a.Addr("mqtt"), "https", a.Addr("https"), "admin", a.Addr("admin"), "api", a.Addr("api"))
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-a.Err():
		log.Error("component failed; shutting down", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Stop(sctx); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return runErr
}
