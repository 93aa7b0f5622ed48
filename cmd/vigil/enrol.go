package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"vigil/internal/app"
	"vigil/internal/enrol"
	"vigil/internal/store"
)

// deviceEnrolToken issues a single-use enrolment token for a device: the
// device exchanges it, with a CSR, for a client certificate at
// POST /api/v1/enrol (docs/device-api.md#enrolment).
func deviceEnrolToken(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("device enrol-token", flag.ContinueOnError)
	dev := fs.String("device", "", "device id (required)")
	ttl := fs.Duration("ttl", enrol.DefaultTokenTTL, "how long the token may be used (at most 168h)")
	asJSON := fs.Bool("json", false, "print the token as JSON")
	cfg, err := loadConfig(fs, e, args)
	if err != nil {
		return err
	}
	if *dev == "" {
		return usagef("vigil device enrol-token: --device is required")
	}
	if *ttl <= 0 || *ttl > enrol.MaxTokenTTL {
		return usagef("vigil device enrol-token: --ttl %v: want above 0 and at most %v", *ttl, enrol.MaxTokenTTL)
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	tok, err := enrol.NewToken(ctx, st, time.Now(), *dev, *ttl)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("device %q not found; list devices with: vigil device list", *dev)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(tok)
	}
	fmt.Fprintf(e.stdout, "enrolment token for device %s; single use, shown only now, valid until %s:\n\n  %s\n\nThe device sends it with a CSR for its own key (ECDSA P-256 or Ed25519):\nPOST /api/v1/enrol {\"device_id\": %q, \"token\": \"…\", \"csr\": \"-----BEGIN CERTIFICATE REQUEST-----…\"}\n",
		tok.DeviceID, tok.ExpiresAt.Local().Format(time.DateTime), tok.Value, tok.DeviceID)
	return nil
}
