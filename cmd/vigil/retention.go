package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"vigil/internal/app"
	"vigil/internal/audit"
	"vigil/internal/clock"
	"vigil/internal/retention"
	"vigil/internal/store"
)

const retentionUsage = "vigil retention show --org ORG [--json] | vigil retention set --org ORG [--positions DAYS] [--events DAYS] [--alerts DAYS] [--audit DAYS] | vigil retention purge-now --org ORG"

// runRetention shows and sets an organisation's retention periods, and
// purges what is past them now (the server does it hourly).
func runRetention(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usagef("%s", retentionUsage)
	}
	switch args[0] {
	case "show":
		return retentionShow(ctx, e, args[1:])
	case "set":
		return retentionSet(ctx, e, args[1:])
	case "purge-now":
		return retentionPurge(ctx, e, args[1:])
	}
	return usagef("vigil retention: unknown subcommand %q (want show, set or purge-now)", args[0])
}

func retentionOrg(cmd string, org string, fs *flag.FlagSet) error {
	if org == "" {
		return usagef("vigil retention %s: --org is required", cmd)
	}
	if fs.NArg() > 0 {
		return usagef("vigil retention %s takes no arguments, got %q; usage: %s", cmd, fs.Arg(0), retentionUsage)
	}
	return nil
}

func getRetention(ctx context.Context, st store.Store, org string) (store.RetentionPolicy, error) {
	p, err := st.GetRetention(ctx, org)
	if errors.Is(err, store.ErrNotFound) {
		return p, fmt.Errorf("organisation %q not found", org)
	}
	return p, err
}

func retentionShow(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("retention show", flag.ContinueOnError)
	org := fs.String("org", "", "organisation id (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if err := retentionOrg("show", *org, fs); err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	p, err := getRetention(ctx, st, *org)
	if err != nil {
		return err
	}
	return printRetention(e, p, *asJSON)
}

func printRetention(e env, p store.RetentionPolicy, asJSON bool) error {
	eff := retention.Effective(p)
	if asJSON {
		out := map[string]any{"org_id": p.OrgID}
		var defaults []string
		for _, c := range retention.Classes {
			out[string(c)+"_days"] = int(retention.Period(eff, c) / retention.Day)
			if retention.Period(p, c) == 0 {
				defaults = append(defaults, string(c))
			}
		}
		out["defaults"] = defaults
		return json.NewEncoder(e.stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tDAYS\t\tBOUNDS")
	for _, c := range retention.Classes {
		note := ""
		if retention.Period(p, c) == 0 {
			note = "(default)"
		}
		b := retention.BoundOf(c)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d–%d\n", c, retention.Period(eff, c)/retention.Day, note, b.Min/retention.Day, b.Max/retention.Day)
	}
	return tw.Flush()
}

func retentionSet(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("retention set", flag.ContinueOnError)
	org := fs.String("org", "", "organisation id (required)")
	flags := map[retention.Class]*int{}
	for _, c := range retention.Classes {
		b := retention.BoundOf(c)
		flags[c] = fs.Int(string(c), -1, fmt.Sprintf("%s: days to keep, %d to %d; 0 for the default (%d); unchanged when not given",
			c, b.Min/retention.Day, b.Max/retention.Day, retention.Default(c)/retention.Day))
	}
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if err := retentionOrg("set", *org, fs); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	acc, err := app.OpenAccess(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer acc.Close()
	p, err := getRetention(ctx, acc.Store, *org)
	if err != nil {
		return err
	}
	details := map[string]string{"via": "cli"}
	for _, c := range retention.Classes {
		if !given[string(c)] {
			continue
		}
		n := *flags[c]
		b := retention.BoundOf(c)
		if n < 0 || n > int(b.Max/retention.Day) || n != 0 && n < int(b.Min/retention.Day) {
			return usagef("vigil retention set: --%s %d: want 0 (the default) or %d to %d days", c, n, b.Min/retention.Day, b.Max/retention.Day)
		}
		retention.SetPeriod(&p, c, time.Duration(n)*retention.Day)
		details[string(c)+"_days"] = strconv.Itoa(n)
	}
	if len(details) == 1 {
		return usagef("vigil retention set: give at least one of --positions, --events, --alerts, --audit")
	}
	if err := retention.Validate(p); err != nil {
		return usagef("vigil retention set: %v", err)
	}
	p.UpdatedAt, p.UpdatedBy = time.Now().UTC(), "cli"
	// Recorded first: a policy that deletes data is never in force unaudited.
	if err := acc.Audit.Record(ctx, audit.Entry{OrgID: *org, Actor: "cli", SourceIP: "local", Action: "org.retention",
		ObjectType: "org", ObjectID: *org, Outcome: "ok", Severity: "high", Details: details}); err != nil {
		return fmt.Errorf("set retention: audit log: %w", err)
	}
	if err := acc.Store.SetRetention(ctx, p); err != nil {
		return fmt.Errorf("set retention: %w", err)
	}
	return printRetention(e, p, false)
}

func retentionPurge(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("retention purge-now", flag.ContinueOnError)
	org := fs.String("org", "", "organisation id (required)")
	batch := fs.Int("batch", 5000, "most positions or events deleted per transaction")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if err := retentionOrg("purge-now", *org, fs); err != nil {
		return err
	}
	if *batch < 1 || *batch > 100000 {
		return usagef("vigil retention purge-now: --batch %d: want 1 to 100000", *batch)
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := getRetention(ctx, st, *org); err != nil {
		return err
	}
	start := time.Now()
	r, err := retention.New(st, clock.Real{}, nil, retention.Config{BatchRows: *batch}).RunOrg(ctx, *org)
	took := time.Since(start)
	fmt.Fprintf(e.stdout, "purged %d positions, %d events, %d alerts of %s in %d batches, %s\n",
		r.Rows[retention.Positions], r.Rows[retention.Events], r.Rows[retention.Alerts], *org, r.Batches, took.Round(time.Millisecond))
	if n := r.Rows[retention.Positions] + r.Rows[retention.Events]; n > 0 && took > 0 {
		fmt.Fprintf(e.stdout, "%.0f rows/s\n", float64(n)/took.Seconds())
	}
	return err
}
