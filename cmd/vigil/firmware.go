package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"vigil/internal/app"
	"vigil/internal/audit"
	"vigil/internal/clock"
	"vigil/internal/config"
	"vigil/internal/firmware"
	"vigil/internal/firmware/fleet"
	"vigil/internal/store"
)

const firmwareUsage = `vigil firmware online-key | vigil firmware roots --out DIR
  | vigil firmware upload --dir REPO [--trust-root KEYIDS]
  | vigil firmware list [--json]
  | vigil firmware rollout create --org ORG --image NAME --percent P [--devices ID,ID] [--name NAME]
  | vigil firmware rollout set --org ORG --id ID [--percent P] [--pause | --resume]
  | vigil firmware rollout list --org ORG [--json]
  | vigil firmware compliance --org ORG [--stale-after 168h] [--json]`

// runFirmware uploads releases, runs rollouts and shows fleet compliance
// (issue 8). It works on the store and the data directory directly, like
// the other administration commands.
func runFirmware(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usagef("%s", firmwareUsage)
	}
	switch args[0] {
	case "online-key":
		return firmwareOnlineKey(e, args[1:])
	case "roots":
		return firmwareRoots(ctx, e, args[1:])
	case "upload":
		return firmwareUpload(ctx, e, args[1:])
	case "list":
		return firmwareList(ctx, e, args[1:])
	case "rollout":
		return firmwareRollout(ctx, e, args[1:])
	case "compliance":
		return firmwareCompliance(ctx, e, args[1:])
	}
	return usagef("vigil firmware: unknown subcommand %q (want online-key, roots, upload, list, rollout or compliance)", args[0])
}

func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("vigil %s takes no arguments, got %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// firmwareOnlineKey prints the server's online public key, for `vigil
// release init --online-key` (the key is made on first use).
func firmwareOnlineKey(e env, args []string) error {
	fs := flag.NewFlagSet("firmware online-key", flag.ContinueOnError)
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	k, err := app.FirmwareOnlineKey(cfg.DataDir)
	if err != nil {
		return err
	}
	b, err := k.PublicJSON()
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(b)
	return err
}

func openFirmware(ctx context.Context, cfg config.Config) (*fleet.Service, store.Store, error) {
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	svc, err := app.FirmwareService(cfg.Firmware, st, cfg.DataDir, clock.Real{})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return svc, st, nil
}

// firmwareRoots writes the two roots a device is provisioned with.
func firmwareRoots(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("firmware roots", flag.ContinueOnError)
	out := fs.String("out", "", "`dir`ectory to write image-root.json and director-root.json to (required)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *out == "" {
		return usagef("vigil firmware roots: --out is required")
	}
	svc, st, err := openFirmware(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	img, err := svc.ImageRoot(ctx)
	if errors.Is(err, fleet.ErrNoRelease) {
		return errors.New("no release uploaded yet: run 'vigil firmware upload' first")
	} else if err != nil {
		return err
	}
	dir, err := svc.DirectorRoot(ctx)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for name, b := range map[string][]byte{"image-root.json": img, "director-root.json": dir} {
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "wrote %s and %s\n", filepath.Join(*out, "image-root.json"), filepath.Join(*out, "director-root.json"))
	return nil
}

// firmwareUpload verifies a release repository against the trusted root
// and stores it. The first upload has no trusted root yet: its root key
// ids must be confirmed with --trust-root.
func firmwareUpload(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("firmware upload", flag.ContinueOnError)
	dir := fs.String("dir", "", "the release repository `dir`ectory (required)")
	trust := fs.String("trust-root", "", "first upload only: the comma-separated root key `ids` you expect (printed when missing)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("vigil firmware upload: --dir is required")
	}
	b, err := firmware.Repo{Dir: *dir}.Bundle()
	if err != nil {
		return err
	}
	acc, err := app.OpenAccess(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer acc.Close()
	svc, err := app.FirmwareService(cfg.Firmware, acc.Store, cfg.DataDir, clock.Real{})
	if err != nil {
		return err
	}
	roots, err := acc.Store.ListFirmwareRoots(ctx, store.FirmwareImageRepo)
	if err != nil {
		return err
	}
	if len(roots) == 0 {
		ids, err := firmware.RootKeyIDs(b)
		if err != nil {
			return err
		}
		if *trust != strings.Join(ids, ",") {
			return usagef("vigil firmware upload: first upload: check the release keys and confirm them with --trust-root %s", strings.Join(ids, ","))
		}
	}
	rel, err := svc.Upload(ctx, b)
	if err != nil {
		if firmware.IsReleaseError(err) {
			return errors.New(err.Error())
		}
		return err
	}
	if err := acc.Audit.Record(ctx, audit.Entry{Actor: "cli", SourceIP: "local", Action: "firmware.upload", ObjectType: "release",
		ObjectID: strconv.FormatInt(rel.TargetsVersion, 10), Outcome: "ok", Severity: "high",
		Details: map[string]string{"images": strconv.Itoa(len(rel.Images)), "root_version": strconv.FormatInt(rel.Root.Signed.Version, 10), "via": "cli"}}); err != nil {
		return fmt.Errorf("upload: audit log: %w", err)
	}
	fmt.Fprintf(e.stdout, "uploaded targets version %d (root version %d): %d images\n", rel.TargetsVersion, rel.Root.Signed.Version, len(rel.Images))
	return nil
}

func firmwareList(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("firmware list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	svc, st, err := openFirmware(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	rs, err := svc.Releases(ctx)
	if err != nil {
		return err
	}
	all, err := st.ListFirmwareImages(ctx)
	if err != nil {
		return err
	}
	type row struct {
		Name         string `json:"name"`
		Hardware     string `json:"hardware"`
		Version      string `json:"version"`
		KnownProblem bool   `json:"known_problem"`
		Length       int64  `json:"length"`
		SHA256       string `json:"sha256"`
	}
	rows := []row{}
	for _, im := range all {
		if _, ok := rs.Images[im.Name]; ok {
			rows = append(rows, row{im.Name, im.Hardware, im.Version, im.KnownProblem, im.Length, im.SHA256})
		}
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"targets_version": rs.TargetsVersion, "images": rows})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "IMAGE\tHARDWARE\tVERSION\tBYTES\tSHA256\tPROBLEM\n")
	for _, r := range rows {
		p := ""
		if r.KnownProblem {
			p = "known problem"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Name, r.Hardware, r.Version, r.Length, r.SHA256[:16], p)
	}
	return tw.Flush()
}

func firmwareRollout(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usagef("%s", firmwareUsage)
	}
	switch args[0] {
	case "create":
		return rolloutCreate(ctx, e, args[1:])
	case "set":
		return rolloutSet(ctx, e, args[1:])
	case "list":
		return rolloutList(ctx, e, args[1:])
	}
	return usagef("vigil firmware rollout: unknown subcommand %q (want create, set or list)", args[0])
}

func rolloutCreate(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("firmware rollout create", flag.ContinueOnError)
	org := fs.String("org", "", "organisation id (required)")
	image := fs.String("image", "", "the approved image's `name` (required; see 'vigil firmware list')")
	percent := fs.Int("percent", -1, "per cent of the devices, 0 to 100 (required)")
	devices := fs.String("devices", "", "comma-separated device `ids` of the group (default: every device of the organisation)")
	name := fs.String("name", "", "a `name` for people")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *org == "" || *image == "" || *percent < 0 {
		return usagef("vigil firmware rollout create: --org, --image and --percent are required")
	}
	acc, err := app.OpenAccess(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer acc.Close()
	if _, err := acc.Store.GetOrg(ctx, *org); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("organisation %q not found", *org)
	} else if err != nil {
		return err
	}
	rs, err := fleet.LoadReleaseSet(ctx, acc.Store)
	if err != nil {
		return err
	}
	devs, err := acc.Store.ListDevices(ctx, *org)
	if err != nil {
		return err
	}
	var group []string
	if *devices != "" {
		group = strings.Split(*devices, ",")
	}
	r, err := fleet.NewRollout(fleet.RolloutRequest{Name: *name, Image: *image, Devices: group, Percent: *percent}, devs, rs)
	var fe *firmware.FieldError
	if errors.As(err, &fe) {
		return usagef("vigil firmware rollout create: --%s: %s", strings.SplitN(fe.Field, "[", 2)[0], fe.Msg)
	} else if err != nil {
		return err
	}
	now := time.Now().UTC()
	r.ID, r.OrgID, r.CreatedBy, r.CreatedAt, r.UpdatedAt = "ro_"+strings.ToLower(strconv.FormatInt(now.UnixNano(), 36)), *org, "cli", now, now
	if err := acc.Audit.Record(ctx, audit.Entry{OrgID: *org, Actor: "cli", SourceIP: "local", Action: "firmware.rollout_create", ObjectType: "rollout",
		ObjectID: r.ID, Outcome: "ok", Severity: "info", Details: map[string]string{"image": r.Image, "percent": strconv.Itoa(r.Percent), "via": "cli"}}); err != nil {
		return fmt.Errorf("create rollout: audit log: %w", err)
	}
	if err := acc.Store.CreateFirmwareRollout(ctx, r); err != nil {
		return fmt.Errorf("create rollout: %w", err)
	}
	fmt.Fprintf(e.stdout, "rollout %s: %s to %d%% of %s\n", r.ID, r.Image, r.Percent, groupOf(r))
	return nil
}

func groupOf(r store.FirmwareRollout) string {
	if len(r.Devices) == 0 {
		return "every device"
	}
	return strconv.Itoa(len(r.Devices)) + " devices"
}

func rolloutSet(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("firmware rollout set", flag.ContinueOnError)
	org := fs.String("org", "", "organisation id (required)")
	id := fs.String("id", "", "rollout id (required)")
	percent := fs.Int("percent", -1, "raise to this per cent")
	pause := fs.Bool("pause", false, "pause the rollout")
	resume := fs.Bool("resume", false, "resume the rollout")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *org == "" || *id == "" {
		return usagef("vigil firmware rollout set: --org and --id are required")
	}
	if *pause && *resume || !*pause && !*resume && *percent < 0 {
		return usagef("vigil firmware rollout set: give --percent, or one of --pause and --resume")
	}
	acc, err := app.OpenAccess(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer acc.Close()
	r, err := acc.Store.GetFirmwareRollout(ctx, *id)
	if errors.Is(err, store.ErrNotFound) || err == nil && r.OrgID != *org {
		return fmt.Errorf("rollout %q of %q not found", *id, *org)
	} else if err != nil {
		return err
	}
	if *percent >= 0 {
		if *percent > 100 || *percent < r.Percent {
			return usagef("vigil firmware rollout set: --percent %d: want %d (now) to 100; pause the rollout to stop it", *percent, r.Percent)
		}
		r.Percent = *percent
	}
	if *pause {
		r.Paused, r.PausedReason = true, "manual"
	}
	if *resume {
		r.Paused, r.PausedReason = false, ""
	}
	r.UpdatedAt = time.Now().UTC()
	if err := acc.Audit.Record(ctx, audit.Entry{OrgID: *org, Actor: "cli", SourceIP: "local", Action: "firmware.rollout_update", ObjectType: "rollout",
		ObjectID: r.ID, Outcome: "ok", Severity: "info", Details: map[string]string{"percent": strconv.Itoa(r.Percent), "paused": strconv.FormatBool(r.Paused), "via": "cli"}}); err != nil {
		return fmt.Errorf("update rollout: audit log: %w", err)
	}
	if err := acc.Store.UpdateFirmwareRollout(ctx, r); err != nil {
		return fmt.Errorf("update rollout: %w", err)
	}
	fmt.Fprintf(e.stdout, "rollout %s: %d%%, paused %v\n", r.ID, r.Percent, r.Paused)
	return nil
}

func rolloutList(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("firmware rollout list", flag.ContinueOnError)
	org := fs.String("org", "", "organisation id (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *org == "" {
		return usagef("vigil firmware rollout list: --org is required")
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListFirmwareRollouts(ctx, *org)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []store.FirmwareRollout{}
		}
		return json.NewEncoder(e.stdout).Encode(map[string]any{"rollouts": list})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\tIMAGE\tGROUP\tPERCENT\tINSTALLED\tFAILED\tSTATE\n")
	for _, r := range list {
		state := "running"
		if r.Paused {
			state = "paused (" + r.PausedReason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.ID, r.Image, groupOf(r), r.Percent, r.Installed, r.Failed, state)
	}
	return tw.Flush()
}

func firmwareCompliance(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("firmware compliance", flag.ContinueOnError)
	org := fs.String("org", "", "organisation id (required)")
	stale := fs.Duration("stale-after", 0, "a device that has not checked for updates for this `duration` is stale (default firmware.stale_after)")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *org == "" {
		return usagef("vigil firmware compliance: --org is required")
	}
	if *stale < 0 {
		return usagef("vigil firmware compliance: --stale-after must not be negative")
	}
	svc, st, err := openFirmware(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if *stale == 0 {
		*stale = svc.Config().StaleAfter
	}
	rs, err := svc.Releases(ctx)
	if err != nil {
		return err
	}
	devs, err := st.ListDevices(ctx, *org)
	if err != nil {
		return err
	}
	sts, err := st.ListFirmwareStatus(ctx, *org)
	if err != nil {
		return err
	}
	rollouts, err := st.ListFirmwareRollouts(ctx, *org)
	if err != nil {
		return err
	}
	rows := fleet.Compliance(devs, sts, rollouts, rs, time.Now(), *stale)
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"devices": rows, "newest": rs.Newest()})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "DEVICE\tRUNNING\tTARGET\tBEHIND\tSTALE\tLAST CHECK\tNOTES\n")
	for _, c := range rows {
		var notes []string
		if !c.Approved {
			notes = append(notes, "not approved")
		}
		if c.Problem {
			notes = append(notes, "known problem")
		}
		if c.Refusal != "" {
			notes = append(notes, "refused: "+c.Refusal)
		}
		if c.Quarantine != "" {
			notes = append(notes, "quarantined: "+c.Quarantine)
		}
		last := "never"
		if !c.LastCheck.IsZero() {
			last = c.LastCheck.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\t%s\t%s\n", c.DeviceID, orDash(c.Running), orDash(c.Target), c.Behind, c.Stale, last, strings.Join(notes, "; "))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
