package main

import (
	"context"
	"flag"
	"fmt"
)

func runConfig(_ context.Context, e env, args []string) error {
	if len(args) == 0 || (args[0] != "check" && args[0] != "dump") {
		return usagef("vigil config check|dump [flags]   (the same flags, VIGIL_* variables and --config file as serve)")
	}
	fs := flag.NewFlagSet("config "+args[0], flag.ContinueOnError)
	cfg, err := loadConfig(fs, e, args[1:])
	if err != nil {
		return err
	}
	if args[0] == "check" {
		for _, w := range cfg.KeysWarnings() {
			fmt.Fprintln(e.stderr, "warning:", w)
		}
		fmt.Fprintln(e.stdout, "configuration ok")
		return nil
	}
	return cfg.Dump(e.stdout)
}
