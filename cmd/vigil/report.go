package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"

	"vigil/internal/app"
	"vigil/internal/report"
	"vigil/internal/store"
)

// runReport prints reports; "response" is the monthly response-time
// statistics (docs/reports.md).
func runReport(ctx context.Context, e env, args []string) error {
	const usage = "vigil report response --month YYYY-MM [--org ORG] [--tz ZONE] [--format text|json|csv]"
	if len(args) == 0 || args[0] != "response" {
		return usagef(usage)
	}
	fs := flag.NewFlagSet("report response", flag.ContinueOnError)
	month := fs.String("month", "", "the calendar month to report, YYYY-MM (required)")
	org := fs.String("org", "", "only this organisation (default: every organisation)")
	tz := fs.String("tz", "UTC", "the time zone the month is in, an IANA name such as Europe/London")
	format := fs.String("format", "text", "text (a table), json or csv")
	cfg, err := loadConfig(fs, e, args[1:])
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("vigil report response takes no arguments, got %q; usage: %s", fs.Arg(0), usage)
	}
	if *format != "text" && *format != "json" && *format != "csv" {
		return usagef("vigil report response: --format %q: want text, json or csv", *format)
	}
	loc, err := report.Zone(*tz)
	if err != nil {
		return usagef("vigil report response: --tz %q: want an IANA time zone such as Europe/London", *tz)
	}
	if *month == "" {
		return usagef("vigil report response: --month is required (YYYY-MM, e.g. 2026-11)")
	}
	p, err := report.ParseMonth(*month, loc)
	if err != nil {
		return usagef("vigil report response: --month %q: want YYYY-MM, e.g. 2026-11", *month)
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if *org != "" {
		if _, err := st.GetOrg(ctx, *org); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("organisation %q not found; list them with: vigil org list", *org)
		} else if err != nil {
			return fmt.Errorf("report response: %w", err)
		}
	}
	facts, err := report.Collect(ctx, st, *org, p)
	if err != nil {
		return fmt.Errorf("report response: %w", err)
	}
	r := report.Compute(*org, p, facts)
	switch *format {
	case "json":
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "csv":
		return report.WriteCSV(e.stdout, r)
	}
	return report.WriteText(e.stdout, r)
}
