package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"vigil/internal/app"
	"vigil/internal/audit"
	"vigil/internal/clock"
	"vigil/internal/device"
	"vigil/internal/store"
)

func runDevice(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usagef("vigil device add --org ORG --name NAME | vigil device list [--org ORG] | vigil device assign --device ID --person ID | vigil device enrol --device ID [--ttl 15m] (alias enrol-token) | vigil device revoke --device ID --reason TEXT | vigil device imei --device ID (--imei IMEI | --remove)")
	}
	switch args[0] {
	case "add":
		return deviceAdd(ctx, e, args[1:])
	case "list":
		return deviceList(ctx, e, args[1:])
	case "assign":
		return deviceAssign(ctx, e, args[1:])
	case "enrol", "enrol-token":
		return deviceEnrolToken(ctx, e, args[1:])
	case "revoke":
		return deviceRevoke(ctx, e, args[1:])
	case "imei":
		return deviceIMEI(ctx, e, args[1:])
	}
	return usagef("vigil device: unknown subcommand %q (want add, list, assign, enrol, imei or revoke)", args[0])
}

// deviceRevoke disables a device for good, audited with high severity. A
// running server closes its live connection within a second (every
// instance polls for revocations) and refuses its certificate and secret.
func deviceRevoke(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("device revoke", flag.ContinueOnError)
	dev := fs.String("device", "", "device id (required)")
	reason := fs.String("reason", "", "why, for the audit log (required), e.g. 'lost on a visit'")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if *dev == "" || strings.TrimSpace(*reason) == "" {
		return usagef("vigil device revoke: --device and --reason are required")
	}
	acc, err := app.OpenAccess(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer acc.Close()
	d, err := acc.Store.GetDevice(ctx, *dev)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("device %q not found", *dev)
	} else if err != nil {
		return err
	}
	// Recorded first: a revocation nobody can trace is not made.
	if err := acc.Audit.Record(ctx, audit.Entry{OrgID: d.OrgID, Actor: "cli", SourceIP: "local", Action: "device.revoke",
		ObjectType: "device", ObjectID: d.ID, Outcome: "ok", Severity: "high", Details: map[string]string{"reason": *reason, "via": "cli"}}); err != nil {
		return fmt.Errorf("revoke device: audit log: %w", err)
	}
	if err := acc.Store.DisableDevice(ctx, d.ID, time.Now()); err != nil {
		return fmt.Errorf("revoke device: %w", err)
	}
	fmt.Fprintf(e.stdout, "device %s revoked; a running server closes its connection within a second\n", d.ID)
	return nil
}

// deviceAssign says who wears a device ("" to unassign): the person must be
// of the device's organisation.
func deviceAssign(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("device assign", flag.ContinueOnError)
	dev := fs.String("device", "", "device id (required)")
	person := fs.String("person", "", "person id (required; \"none\" to unassign)")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if *dev == "" || *person == "" {
		return usagef("vigil device assign: --device and --person are required")
	}
	p := *person
	if p == "none" {
		p = ""
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.AssignDevice(ctx, *dev, p); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("device %q not found, or person %q not found in the device's organisation", *dev, *person)
	} else if err != nil {
		return err
	}
	if p == "" {
		fmt.Fprintf(e.stdout, "device %s unassigned\n", *dev)
	} else {
		fmt.Fprintf(e.stdout, "device %s assigned to person %s\n", *dev, p)
	}
	return nil
}

func deviceAdd(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("device add", flag.ContinueOnError)
	org := fs.String("org", "", "organisation id (required; create it with 'vigil org add')")
	name := fs.String("name", "", "device name, e.g. 'pendant 12' (required)")
	asJSON := fs.Bool("json", false, "print the credentials as JSON")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if *org == "" || *name == "" {
		return usagef("vigil device add: --org and --name are required")
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	creds, err := device.NewRegistry(st, clock.Real{}).Register(ctx, *org, *name)
	if errors.Is(err, device.ErrUnknownOrg) {
		return fmt.Errorf("organisation %q not found; create it first with: vigil org add --id %s --name NAME", *org, *org)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(creds)
	}
	fmt.Fprintf(e.stdout, "device registered; the secret is shown only now, store it in the device:\n\n  device id: %s\n  secret:    %s\n\nHTTPS: Authorization: Bearer <secret>\nMQTT: mutual TLS with the device's own certificate: vigil device enrol-token --device %s\n      (or, where the server allows it with mqtt.client_certs = optional: username and client id = device id, password = secret)\n", creds.DeviceID, creds.Secret, creds.DeviceID)
	return nil
}

func deviceList(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("device list", flag.ContinueOnError)
	org := fs.String("org", "", "only this organisation")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	devs, err := st.ListDevices(ctx, *org)
	if err != nil {
		return err
	}
	if *asJSON {
		type row struct {
			ID       string    `json:"id"`
			OrgID    string    `json:"org_id"`
			Name     string    `json:"name"`
			PersonID string    `json:"person_id,omitempty"`
			Firmware string    `json:"firmware,omitempty"`
			LastSeen time.Time `json:"last_seen,omitzero"`
			Battery  *int      `json:"battery,omitempty"`
			Events   int64     `json:"events"`
			Disabled bool      `json:"disabled"`
		}
		out := make([]row, 0, len(devs))
		for _, d := range devs {
			out = append(out, row{d.ID, d.OrgID, d.Name, d.PersonID, d.Firmware, d.State.LastSeen, d.State.Battery, d.State.Events, !d.DisabledAt.IsZero()})
		}
		return json.NewEncoder(e.stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tORG\tNAME\tLAST SEEN\tBATTERY\tEVENTS")
	for _, d := range devs {
		seen, batt := "never", "-"
		if !d.State.LastSeen.IsZero() {
			seen = d.State.LastSeen.Local().Format(time.DateTime)
		}
		if d.State.Battery != nil {
			batt = fmt.Sprintf("%d%%", *d.State.Battery)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", d.ID, d.OrgID, d.Name, seen, batt, d.State.Events)
	}
	return tw.Flush()
}

// deviceIMEI registers the IMEI a GT06 tracker logs in with for a device
// (trackers.gt06_listen), or removes it.
func deviceIMEI(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("device imei", flag.ContinueOnError)
	id := fs.String("device", "", "device id (required)")
	imei := fs.String("imei", "", "the tracker's 15-digit IMEI (printed on it, or *#06# on a phone)")
	remove := fs.Bool("remove", false, "remove the device's IMEI")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	switch {
	case *id == "":
		return usagef("vigil device imei: --device is required")
	case *remove == (*imei != ""):
		return usagef("vigil device imei: give --imei IMEI or --remove")
	case *imei != "" && !validIMEI(*imei):
		return usagef("vigil device imei: --imei must be 15 digits with a valid Luhn check digit")
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	err = st.SetDeviceIMEI(ctx, *id, *imei)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("device %s not found", *id)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("IMEI %s is registered to another device: remove it there first (vigil device imei --device OTHER --remove)", *imei)
	case err != nil:
		return err
	}
	if *remove {
		fmt.Fprintf(e.stdout, "device %s: IMEI removed; a tracker using it is refused at login\n", *id)
		return nil
	}
	fmt.Fprintf(e.stdout, "device %s: IMEI %s registered; the tracker logs in on trackers.gt06_listen (point it there by SMS, e.g. SERVER,1,HOST,PORT,0#)\n", *id, *imei)
	return nil
}

// validIMEI: 15 digits, the last a Luhn check digit.
func validIMEI(s string) bool {
	if len(s) != 15 {
		return false
	}
	sum := 0
	for i := range 15 {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}
