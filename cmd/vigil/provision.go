package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"

	"vigil/internal/device"
	"vigil/internal/sim"
)

// provision returns credentials for n simulated devices in org, reusing the
// ones saved in file (0600) and registering more when there are too few.
func provision(ctx context.Context, reg *device.Registry, org, orgName string, n int, file string) ([]sim.Credential, error) {
	var creds []sim.Credential
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &creds); err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(creds) >= n {
		return creds[:n], nil
	}
	if err := reg.EnsureOrg(ctx, org, orgName); err != nil {
		return nil, err
	}
	for i := len(creds); i < n; i++ {
		c, err := reg.Register(ctx, org, fmt.Sprintf("sim device %d", i+1))
		if err != nil {
			return nil, err
		}
		creds = append(creds, sim.Credential{DeviceID: c.DeviceID, Secret: c.Secret})
	}
	out, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, out, 0o600); err != nil {
		return nil, fmt.Errorf("save simulated device credentials: %w", err)
	}
	return creds, nil
}

// readCreds reads a credentials file: the objects printed by 'vigil device
// add --json', one after another, or a JSON list of them.
func readCreds(file string) ([]sim.Credential, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	b = bytes.TrimSpace(b)
	var list []device.Credentials
	if len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("read credentials %s: %w", file, err)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(b))
		for dec.More() {
			var c device.Credentials
			if err := dec.Decode(&c); err != nil {
				return nil, fmt.Errorf("read credentials %s: %w", file, err)
			}
			list = append(list, c)
		}
	}
	creds := make([]sim.Credential, 0, len(list))
	for i, c := range list {
		if c.DeviceID == "" || c.Secret == "" {
			return nil, fmt.Errorf("read credentials %s: entry %d lacks device_id or secret", file, i)
		}
		creds = append(creds, sim.Credential{DeviceID: c.DeviceID, Secret: c.Secret})
	}
	return creds, nil
}

// clientTLS trusts caPEM for serverName.
func clientTLS(caPEM []byte, serverName string) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate found in PEM")
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}, nil
}

// dialable turns a bound listener address such as "[::]:8883" into one a
// local client can dial.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func refusedTotal(st sim.Stats) uint64 {
	var n uint64
	for _, v := range st.Refused {
		n += v
	}
	return n
}
