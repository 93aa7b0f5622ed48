package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"vigil/internal/app"
	"vigil/internal/geofence"
	"vigil/internal/safety"
	"vigil/internal/store"
	"vigil/internal/web"
)

// runAlerts lists alerts (the lifecycle actions are in the JSON API).
func runAlerts(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "list" {
		return usagef("vigil alerts list [--org ORG] [--open] [--kind KIND] [--limit N] [--json]")
	}
	fs := flag.NewFlagSet("alerts list", flag.ContinueOnError)
	org := fs.String("org", "", "only this organisation")
	open := fs.Bool("open", false, "only open alerts (pending, raised, acknowledged)")
	kind := fs.String("kind", "", "only this kind (sos, duress, missed_checkin, session_overrun, geofence_exit, ...)")
	limit := fs.Int("limit", 100, "at most this many, newest first (1-1000)")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := loadConfig(fs, e, args[1:])
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return usagef("vigil alerts list: --limit %d: want 1 to 1000", *limit)
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	f := store.AlertFilter{OrgID: *org, Kind: *kind, Limit: *limit}
	if *open {
		f.States = []store.AlertState{store.AlertPending, store.AlertRaised, store.AlertAcknowledged}
	}
	list, err := st.ListAlerts(ctx, f)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]web.AlertJSON, len(list))
		for i, a := range list {
			out[i] = web.AlertView(a)
		}
		return json.NewEncoder(e.stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRAISED\tKIND\tSEVERITY\tSTATE\tORG\tPERSON\tDEVICE\tFLAGS")
	for _, a := range list {
		var flags []string
		if a.Duress {
			flags = append(flags, "duress")
		}
		if a.Late {
			flags = append(flags, "late")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.RaisedAt.Local().Format(time.DateTime), a.Kind, a.Severity,
			a.State, a.OrgID, dash(a.PersonID), dash(a.DeviceID), strings.Join(flags, ","))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runSessions lists timed sessions (they are started and ended through
// the JSON API, the worker app or a device).
func runSessions(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "list" {
		return usagef("vigil sessions list [--org ORG] [--person ID] [--active] [--json]")
	}
	fs := flag.NewFlagSet("sessions list", flag.ContinueOnError)
	org := fs.String("org", "", "only this organisation")
	person := fs.String("person", "", "only this person")
	active := fs.Bool("active", false, "only active sessions")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := loadConfig(fs, e, args[1:])
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListSessions(ctx, store.SessionFilter{OrgID: *org, PersonID: *person, ActiveOnly: *active, Limit: 1000})
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]web.SessionJSON, len(list))
		for i, s := range list {
			out[i] = web.SessionView(s, safety.SessionDeadlines(s, 0).CheckinDue)
		}
		return json.NewEncoder(e.stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tPERSON\tSTARTED\tEXPECTED END\tNEXT CHECK-IN\tPRESET")
	for _, s := range list {
		next := "-"
		if d := safety.SessionDeadlines(s, 0).CheckinDue; !d.IsZero() {
			next = d.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, s.PersonID, s.StartedAt.Local().Format(time.DateTime),
			s.ExpectedEnd.Local().Format(time.DateTime), next, dash(s.Preset))
	}
	return tw.Flush()
}

// runZones imports and exports an organisation's geofences as GeoJSON.
func runZones(ctx context.Context, e env, args []string) error {
	const usage = "vigil zones import FILE.geojson --org ORG | vigil zones list --org ORG"
	if len(args) == 0 || (args[0] != "import" && args[0] != "list") {
		return usagef(usage)
	}
	fs := flag.NewFlagSet("zones "+args[0], flag.ContinueOnError)
	org := fs.String("org", "", "organisation id (required)")
	rest, file := args[1:], ""
	if args[0] == "import" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		file, rest = rest[0], rest[1:] // vigil zones import FILE --org ORG
	}
	cfg, err := loadConfig(fs, e, rest)
	if err != nil {
		return err
	}
	if *org == "" {
		return usagef("vigil zones %s: --org is required", args[0])
	}
	if args[0] == "import" {
		switch {
		case file == "" && fs.NArg() == 1:
			file = fs.Arg(0)
		case file == "" || fs.NArg() != 0:
			return usagef("vigil zones import: give one GeoJSON file: %s", usage)
		}
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.GetOrg(ctx, *org); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("organisation %q not found", *org)
	} else if err != nil {
		return err
	}
	if args[0] == "list" {
		recs, err := st.ListGeofences(ctx, *org)
		if err != nil {
			return err
		}
		fences, err := safety.FencesOf(recs)
		if err != nil {
			return err
		}
		b, err := geofence.MarshalGeoJSON(fences)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := web.ImportZones(ctx, st, *org, f, time.Now().UTC())
	var ge *geofence.Error
	if errors.As(err, &ge) {
		return fmt.Errorf("%s: %s (nothing was imported)", file, ge.Error())
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d zones imported into %s (a running server applies them within a minute)\n", n, *org)
	return nil
}
