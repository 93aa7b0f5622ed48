package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"vigil/internal/app"
	"vigil/internal/auth"
	"vigil/internal/config"
	"vigil/internal/store"
)

// runToken manages API tokens on the server's own data: the operator's
// path for integrations and the simulator (admins use the JSON API).
func runToken(ctx context.Context, e env, args []string) error {
	const usage = "vigil token create --org ORG --name NAME [--permissions p1,p2] [--expires 720h] | vigil token list --org ORG | vigil token revoke --org ORG --id ID"
	if len(args) == 0 {
		return usagef(usage)
	}
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	org := fs.String("org", "", "organisation (required)")
	switch args[0] {
	case "create":
		name := fs.String("name", "", "what the token is for (required)")
		perms := fs.String("permissions", "", "comma-separated permissions (default: everything but medical notes); see `vigil token permissions`")
		ttl := fs.Duration("expires", 30*24*time.Hour, "lifetime, at most a year")
		cfg, err := loadConfig(fs, e, args[1:])
		if err != nil {
			return err
		}
		if *org == "" || *name == "" {
			return usagef("vigil token create: --org and --name are required")
		}
		var ps []auth.Permission
		for _, p := range strings.Split(*perms, ",") {
			if p = strings.TrimSpace(p); p != "" {
				if !auth.ValidPermission(auth.Permission(p)) {
					return usagef("vigil token create: unknown permission %q (see vigil token permissions)", p)
				}
				ps = append(ps, auth.Permission(p))
			}
		}
		acc, err := app.OpenAccess(ctx, cfg, nil)
		if err != nil {
			return err
		}
		defer acc.Close()
		svc := acc.Auth
		t, err := svc.IssueToken(ctx, *org, *name, ps, *ttl, "cli")
		if err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		fmt.Fprintf(e.stdout, "token %s for %s, expires %s (shown only now):\n\n    %s\n\nUse it as: Authorization: Bearer <token>\n",
			t.ID, *org, t.ExpiresAt.UTC().Format(time.RFC3339), t.Secret)
		return nil
	case "list":
		cfg, err := loadConfig(fs, e, args[1:])
		if err != nil {
			return err
		}
		if *org == "" {
			return usagef("vigil token list: --org is required")
		}
		st, err := app.OpenStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		ts, err := st.ListAPITokens(ctx, *org)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tEXPIRES\tREVOKED\tPERMISSIONS")
		for _, t := range ts {
			rev := "-"
			if !t.RevokedAt.IsZero() {
				rev = t.RevokedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.ExpiresAt.UTC().Format(time.RFC3339), rev, strings.Join(t.Permissions, ","))
		}
		return tw.Flush()
	case "revoke":
		id := fs.String("id", "", "token id (required)")
		cfg, err := loadConfig(fs, e, args[1:])
		if err != nil {
			return err
		}
		if *org == "" || *id == "" {
			return usagef("vigil token revoke: --org and --id are required")
		}
		acc, err := app.OpenAccess(ctx, cfg, nil)
		if err != nil {
			return err
		}
		defer acc.Close()
		svc := acc.Auth
		if err := svc.RevokeToken(ctx, operator(*org), *org, *id, "local"); err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		fmt.Fprintf(e.stdout, "token %s revoked\n", *id)
		return nil
	case "permissions":
		for _, r := range auth.Roles {
			ps := auth.RolePermissions(r)
			s := make([]string, len(ps))
			for i, p := range ps {
				s[i] = string(p)
			}
			fmt.Fprintf(e.stdout, "%-10s %s\n", r, strings.Join(s, " "))
		}
		return nil
	}
	return usagef(usage)
}

// operator is the principal of a CLI command on the server's own data:
// whoever runs it has the data directory, so acts as the org's admin.
func operator(org string) *auth.Principal {
	return auth.NewPrincipal(store.User{ID: "cli", Provider: true}, []store.Membership{{UserID: "cli", OrgID: org, Role: store.RoleAdmin}}, nil)
}

// issueToken makes an API token for org (the simulator's own).
func issueToken(ctx context.Context, cfg config.Config, org, name string, ttl time.Duration) (string, error) {
	acc, err := app.OpenAccess(ctx, cfg, nil)
	if err != nil {
		return "", err
	}
	defer acc.Close()
	t, err := acc.Auth.IssueToken(ctx, org, name, nil, ttl, "cli")
	if err != nil {
		return "", fmt.Errorf("create an API token for the simulator: %w", err)
	}
	return t.Secret, nil
}

// runUser manages sign-in accounts on the server's own data.
func runUser(ctx context.Context, e env, args []string) error {
	const usage = "vigil user invite --org ORG --email E --name N --role ROLE [--person ID] | vigil user list [--org ORG]"
	if len(args) == 0 {
		return usagef(usage)
	}
	fs := flag.NewFlagSet("user "+args[0], flag.ContinueOnError)
	switch args[0] {
	case "invite":
		org := fs.String("org", "", "organisation (required)")
		email := fs.String("email", "", "e-mail address (required)")
		name := fs.String("name", "", "display name (required)")
		role := fs.String("role", "", "admin, supervisor, responder, auditor, worker, carer or provider (required)")
		person := fs.String("person", "", "the person this user is (workers)")
		cfg, err := loadConfig(fs, e, args[1:])
		if err != nil {
			return err
		}
		if *org == "" || *email == "" || *name == "" || *role == "" {
			return usagef("vigil user invite: --org, --email, --name and --role are required")
		}
		acc, err := app.OpenAccess(ctx, cfg, nil)
		if err != nil {
			return err
		}
		defer acc.Close()
		svc := acc.Auth
		inv, err := svc.InviteUser(ctx, operator(*org), *org, *email, *name, store.Role(*role), *person, "local")
		if err != nil {
			return fmt.Errorf("invite user: %w", err)
		}
		fmt.Fprintf(e.stdout, "user %s created in %s as %s.\nThey set their password with this one-time token (valid 72 h), then enrol a second factor:\n\n    %s\n",
			inv.User.ID, *org, *role, inv.Token)
		if inv.Link != "" {
			fmt.Fprintf(e.stdout, "\nor this link: %s\n", inv.Link)
		}
		return nil
	case "list":
		org := fs.String("org", "", "organisation (default: every user)")
		cfg, err := loadConfig(fs, e, args[1:])
		if err != nil {
			return err
		}
		st, err := app.OpenStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		us, err := st.ListUsers(ctx, *org)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tROLES\tTOTP\tDISABLED")
		for _, u := range us {
			ms, err := st.ListMemberships(ctx, u.ID)
			if err != nil {
				return err
			}
			var roles []string
			for _, m := range ms {
				roles = append(roles, m.OrgID+":"+string(m.Role))
			}
			if u.Provider {
				roles = append(roles, "provider-staff")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%v\n", u.ID, u.Email, u.Name, strings.Join(roles, ","), u.TOTPSeed != nil, !u.DisabledAt.IsZero())
		}
		return tw.Flush()
	}
	return usagef(usage)
}
