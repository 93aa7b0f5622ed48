package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"vigil/internal/app"
	"vigil/internal/device"
	"vigil/internal/store"
)

func runOrg(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return usagef("vigil org add --id ID --name NAME | vigil org list")
	}
	switch args[0] {
	case "add":
		fs := flag.NewFlagSet("org add", flag.ContinueOnError)
		id := fs.String("id", "", "organisation id: lowercase letters, digits and '-' (required)")
		name := fs.String("name", "", "display name (required)")
		cfg, err := loadConfig(fs, e, args[1:])
		if err != nil {
			return err
		}
		if *id == "" || strings.TrimSpace(*name) == "" {
			return usagef("vigil org add: --id and --name are required")
		}
		if !device.ValidOrgID(*id) {
			return usagef("vigil org add: --id %q: %v", *id, device.ErrInvalidOrg)
		}
		st, err := app.OpenStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.CreateOrg(ctx, store.Org{ID: *id, Name: strings.TrimSpace(*name), CreatedAt: time.Now().UTC()}); err != nil {
			return fmt.Errorf("create organisation %s: %w", *id, err)
		}
		fmt.Fprintf(e.stdout, "organisation %s created\n", *id)
		return nil
	case "list":
		fs := flag.NewFlagSet("org list", flag.ContinueOnError)
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
		orgs, err := st.ListOrgs(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(orgs)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED")
		for _, o := range orgs {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", o.ID, o.Name, o.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return usagef("vigil org: unknown subcommand %q (want add or list)", args[0])
}
