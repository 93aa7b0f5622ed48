package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"vigil/internal/alert"
	"vigil/internal/app"
	"vigil/internal/audit"
	"vigil/internal/config"
	"vigil/internal/datakey"
	"vigil/internal/device"
	"vigil/internal/fall"
	"vigil/internal/store"
	"vigil/internal/store/encrypted"
	"vigil/internal/web"
)

// runPerson manages the people devices are worn by: workers and residents,
// and each one's fall-detector sensitivity. (Accounts, contacts and the
// JSON API come with the access issue.)
func runPerson(ctx context.Context, e env, args []string) error {
	const usage = "vigil person add --org ORG --name NAME --kind worker|resident [--fall-sensitivity X] [--fall-cancel-window D] | vigil person list --org ORG | vigil person set --id ID [--fall-sensitivity X] [--fall-cancel-window D] [--duress-code-file FILE | --clear-duress-code] | vigil person export --id ID [--html] | vigil person erase --id ID --reason TEXT"
	if len(args) == 0 {
		return usagef(usage)
	}
	switch args[0] {
	case "add":
		return personAdd(ctx, e, args[1:])
	case "list":
		return personList(ctx, e, args[1:])
	case "set":
		return personSet(ctx, e, args[1:])
	case "export":
		return personExport(ctx, e, args[1:])
	case "erase":
		return personErase(ctx, e, args[1:])
	}
	return usagef("vigil person: unknown subcommand %q (want add, list, set, export or erase)", args[0])
}

// cancelWindowFlag parses --fall-cancel-window: 0 (the server's default)
// or 5 s to 5 min, the range safety.pre_alert accepts.
func cancelWindowFlag(raw string) (time.Duration, error) {
	d, err := time.ParseDuration(raw)
	if err != nil && raw == "0" {
		d, err = 0, nil
	}
	if err != nil {
		return 0, usagef("--fall-cancel-window %q: want a duration such as 15s", raw)
	}
	if d != 0 && (d < 5*time.Second || d > 5*time.Minute) {
		return 0, usagef("--fall-cancel-window %v: want 5s to 5m, or 0 for the server's default", d)
	}
	return d, nil
}

func windowText(d time.Duration) string {
	if d == 0 {
		return "default"
	}
	return d.String()
}

// sensitivityFlag parses --fall-sensitivity and checks it against the
// bounds the default model's evaluation measured.
func sensitivityFlag(raw string) (float64, error) {
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return 0, usagef("--fall-sensitivity %q: want a number", raw)
	}
	m, err := fall.DefaultModel()
	if err != nil {
		return 0, err
	}
	lo, hi := m.SensitivityBounds[0], m.SensitivityBounds[1]
	if !(v >= lo && v <= hi) {
		return 0, usagef("--fall-sensitivity %v: outside the range the fall detector was evaluated for, %v to %v (0 is its operating point; higher catches more falls and raises more false alarms, see docs/falls.md)", v, lo, hi)
	}
	return v, nil
}

func personAdd(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("person add", flag.ContinueOnError)
	org := fs.String("org", "", "organisation id (required)")
	name := fs.String("name", "", "the person's name (required)")
	kind := fs.String("kind", "", "worker (lone worker) or resident (monitored older person) (required)")
	sens := fs.String("fall-sensitivity", "0", "fall-detector sensitivity for this person's devices (see docs/falls.md)")
	window := fs.String("fall-cancel-window", "0", "how long this person has to cancel a detected fall, e.g. 15s (5s to 5m; 0 for the server's default)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if *org == "" || strings.TrimSpace(*name) == "" {
		return usagef("vigil person add: --org and --name are required")
	}
	k := store.PersonKind(*kind)
	if k != store.PersonWorker && k != store.PersonResident {
		return usagef("vigil person add: --kind %q: want worker or resident", *kind)
	}
	v, err := sensitivityFlag(*sens)
	if err != nil {
		return err
	}
	w, err := cancelWindowFlag(*window)
	if err != nil {
		return err
	}
	id, err := device.NewPersonID()
	if err != nil {
		return err
	}
	st, _, done, err := openEncrypted(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	err = st.CreatePerson(ctx, store.Person{ID: id, OrgID: *org, Kind: k, Name: strings.TrimSpace(*name), CreatedAt: time.Now().UTC(), FallSensitivity: v, FallCancelWindow: w})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("organisation %q not found; create it first with: vigil org add --id %s --name NAME", *org, *org)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "person %s created; assign a device with: vigil device assign --device ID --person %s\n", id, id)
	return nil
}

func personList(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("person list", flag.ContinueOnError)
	org := fs.String("org", "", "organisation id (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if *org == "" {
		return usagef("vigil person list: --org is required")
	}
	st, _, done, err := openEncrypted(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	people, err := st.ListPeople(ctx, *org)
	if err != nil {
		return err
	}
	falseAlarms, err := fallFalseAlarms(ctx, st, *org)
	if err != nil {
		return err
	}
	if *asJSON {
		type row struct {
			ID              string  `json:"id"`
			OrgID           string  `json:"org_id"`
			Kind            string  `json:"kind"`
			Name            string  `json:"name"`
			FallSensitivity float64 `json:"fall_sensitivity"`
			FallFalseAlarms int     `json:"fall_false_alarms"`
			// FallCancelWindowS is 0 for the server's default.
			FallCancelWindowS float64 `json:"fall_cancel_window_s"`
		}
		out := make([]row, 0, len(people))
		for _, p := range people {
			out = append(out, row{p.ID, p.OrgID, string(p.Kind), p.Name, p.FallSensitivity, falseAlarms[p.ID], p.FallCancelWindow.Seconds()})
		}
		return json.NewEncoder(e.stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tNAME\tFALL SENSITIVITY\tFALL CANCEL WINDOW\tFALL FALSE ALARMS")
	for _, p := range people {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%+g\t%s\t%d\n", p.ID, p.Kind, p.Name, p.FallSensitivity, windowText(p.FallCancelWindow), falseAlarms[p.ID])
	}
	return tw.Flush()
}

// fallFalseAlarms counts, per person of an organisation, the fall alarms
// that were not falls: pre-alerts the wearer cancelled ("I'm OK") and
// falls resolved as false alarms. Kept for tuning a person's sensitivity
// (docs/falls.md).
func fallFalseAlarms(ctx context.Context, st store.SafetyStore, org string) (map[string]int, error) {
	out := make(map[string]int)
	f := store.AlertFilter{OrgID: org, Kind: alert.KindFall, States: []store.AlertState{store.AlertCancelled, store.AlertResolved}, Limit: 1000}
	for {
		page, err := st.ListAlerts(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("count fall false alarms: %w", err)
		}
		for _, a := range page {
			if a.PersonID != "" && (a.State == store.AlertCancelled || a.Outcome == alert.OutcomeFalseAlarm) {
				out[a.PersonID]++
			}
		}
		if len(page) < f.Limit {
			return out, nil
		}
		// Pre-alerts are raised one at a time: no two share a nanosecond
		// across a page boundary.
		f.RaisedBefore = page[len(page)-1].RaisedAt
	}
}

func personSet(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("person set", flag.ContinueOnError)
	id := fs.String("id", "", "person id (required)")
	sens := fs.String("fall-sensitivity", "", "fall-detector sensitivity (see docs/falls.md)")
	window := fs.String("fall-cancel-window", "", "how long this person has to cancel a detected fall, e.g. 15s (5s to 5m; 0 for the server's default)")
	duressFile := fs.String("duress-code-file", "", "set the person's duress code from this `file` (4 to 16 characters, one line; a code on the command line would stay in shell history)")
	clearDuress := fs.Bool("clear-duress-code", false, "remove the person's duress code")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if *id == "" || (*sens == "" && *window == "" && *duressFile == "" && !*clearDuress) {
		return usagef("vigil person set: --id and at least one of --fall-sensitivity, --fall-cancel-window, --duress-code-file, --clear-duress-code are required")
	}
	var w time.Duration
	if *window != "" {
		if w, err = cancelWindowFlag(*window); err != nil {
			return err
		}
	}
	if *duressFile != "" && *clearDuress {
		return usagef("vigil person set: --duress-code-file and --clear-duress-code exclude each other")
	}
	var v float64
	if *sens != "" {
		if v, err = sensitivityFlag(*sens); err != nil {
			return err
		}
	}
	var code string
	if *duressFile != "" {
		b, err := os.ReadFile(*duressFile)
		if err != nil {
			return fmt.Errorf("read duress code: %w", err)
		}
		code = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if n := len(code); n < 4 || n > 16 || strings.ContainsAny(code, " \t\r\n") {
			return usagef("vigil person set: the duress code in %s must be 4 to 16 characters without spaces", *duressFile)
		}
	}
	st, _, done, err := openEncrypted(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	notFound := func(err error) error {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("person %q not found", *id)
		}
		return err
	}
	if *window != "" {
		if err := st.SetFallCancelWindow(ctx, *id, w); err != nil {
			return notFound(err)
		}
		fmt.Fprintf(e.stdout, "person %s: fall cancel window %s\n", *id, windowText(w))
	}
	if *sens != "" {
		if err := st.SetFallSensitivity(ctx, *id, v); err != nil {
			return notFound(err)
		}
		fmt.Fprintf(e.stdout, "person %s: fall sensitivity %+g (a running server applies it within a minute)\n", *id, v)
	}
	switch {
	case code != "":
		if err := st.SetDuressCode(ctx, *id, store.DuressHash(*id, code)); err != nil {
			return notFound(err)
		}
		fmt.Fprintf(e.stdout, "person %s: duress code set\n", *id)
	case *clearDuress:
		if err := st.SetDuressCode(ctx, *id, nil); err != nil {
			return notFound(err)
		}
		fmt.Fprintf(e.stdout, "person %s: duress code removed\n", *id)
	}
	return nil
}

// personAccess opens the store behind the encryption decorator with the
// audit log, for the data-subject rights commands.
func personAccess(ctx context.Context, cfg config.Config) (*encrypted.Store, *audit.Log, func(), error) {
	acc, err := app.OpenAccess(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, nil, err
	}
	es, err := encrypted.WrapWithKeyFile(acc.Store, cfg.KEKPath(), datakey.Config{CacheSize: cfg.Keys.CacheSize, CacheTTL: cfg.Keys.CacheTTL})
	if err != nil {
		_ = acc.Close()
		return nil, nil, nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return es, acc.Audit, func() { _ = acc.Close() }, nil
}

// personExport prints everything held about a person (subject access):
// JSON, or with --html a readable self-contained report. Audited.
func personExport(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("person export", flag.ContinueOnError)
	id := fs.String("id", "", "person id (required)")
	asHTML := fs.Bool("html", false, "print a readable HTML report instead of JSON")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if *id == "" || fs.NArg() > 0 {
		return usagef("vigil person export: --id is required (and nothing else)")
	}
	es, al, done, err := personAccess(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	p, err := es.GetPerson(ctx, *id)
	if errors.Is(err, store.ErrNotFound) {
		if _, eerr := es.Erasure(ctx, *id); eerr == nil {
			return fmt.Errorf("person %q was erased: nothing is held about them", *id)
		}
		return fmt.Errorf("person %q not found", *id)
	}
	if err != nil {
		return err
	}
	x, err := web.CollectExport(ctx, es, p, time.Now())
	if err != nil {
		return fmt.Errorf("export person %s: %w", *id, err)
	}
	format := "json"
	if *asHTML {
		format = "html"
	}
	// Recorded first: personal data is never served unaudited.
	if err := al.Record(ctx, audit.Entry{OrgID: p.OrgID, Actor: "cli", SourceIP: "local", Action: "person.export",
		ObjectType: "person", ObjectID: p.ID, Outcome: "ok", Severity: "info", Details: map[string]string{"via": "cli", "format": format}}); err != nil {
		return fmt.Errorf("export person %s: audit log: %w", *id, err)
	}
	if *asHTML {
		return web.WriteExportHTML(e.stdout, x)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(x)
}

// personErase erases a person (right to erasure) and prints the receipt.
func personErase(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("person erase", flag.ContinueOnError)
	id := fs.String("id", "", "person id (required)")
	reason := fs.String("reason", "", "the legal basis, e.g. 'GDPR Art. 17 request of 2026-01-05' (required; not the person's name)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	r := strings.TrimSpace(*reason)
	if *id == "" || r == "" || fs.NArg() > 0 {
		return usagef("vigil person erase: --id and --reason are required")
	}
	if len([]rune(r)) > 500 || strings.ContainsAny(r, "\r\n\t") {
		return usagef("vigil person erase: --reason: at most 500 characters, one line")
	}
	es, al, done, err := personAccess(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	org := ""
	if p, err := es.GetPerson(ctx, *id); err == nil {
		org = p.OrgID
	} else if prev, eerr := es.Erasure(ctx, *id); eerr == nil {
		org = prev.OrgID
	} else {
		return fmt.Errorf("person %q not found", *id)
	}
	if err := al.Record(ctx, audit.Entry{OrgID: org, Actor: "cli", SourceIP: "local", Action: "person.erase",
		ObjectType: "person", ObjectID: *id, Outcome: "ok", Severity: "high", Details: map[string]string{"via": "cli"}}); err != nil {
		return fmt.Errorf("erase person %s: audit log: %w", *id, err)
	}
	rec, fresh, err := es.ErasePersonData(ctx, *id, r, time.Now())
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("person %q has an open alert or an active session: resolve or end them first, then erase", *id)
	}
	if err != nil {
		return err
	}
	if fresh {
		if err := al.Record(ctx, audit.Entry{OrgID: org, Actor: "cli", SourceIP: "local", Action: "person.erased",
			ObjectType: "person", ObjectID: *id, Outcome: "ok", Severity: "high", Details: map[string]string{"via": "cli", "receipt_id": rec.ID}}); err != nil {
			return fmt.Errorf("erase person %s: audit log: %w", *id, err)
		}
	} else {
		fmt.Fprintf(e.stderr, "person %s was already erased on %s: the first receipt follows\n", *id, rec.ErasedAt.Format(time.RFC3339))
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rec)
}
