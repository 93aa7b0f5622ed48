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
	"time"

	"vigil/internal/device"
	"vigil/internal/sim"
	"vigil/internal/store"
)

// simDevice is one entry of a simulator's credentials file.
type simDevice struct {
	DeviceID string
	Secret   string
	PersonID string `json:",omitempty"` // the worker person it is assigned to
}

// peopleStore is what provisioning needs to give simulated workers their
// people.
type peopleStore interface {
	CreatePerson(ctx context.Context, p store.Person) error
	AssignDevice(ctx context.Context, deviceID, personID string) error
}

// isWorker says whether simulated device i is a lone worker: an even
// spread of share of the devices (1, 3, 5, … for a half).
func isWorker(i int, share float64) bool {
	return int(float64(i+1)*share) > int(float64(i)*share)
}

// provision returns credentials for n simulated devices in org, and the
// lone workers among them (device id → person id): a share of the
// devices, spread evenly, each assigned to a person of kind worker. It
// reuses what file (0600) holds, and registers devices, creates people
// and assigns them when there are too few.
func provision(ctx context.Context, reg *device.Registry, st peopleStore, org, orgName string, n int, workers float64, file string) ([]sim.Credential, map[string]string, error) {
	var saved []simDevice
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &saved); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", file, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, nil, fmt.Errorf("read %s: %w", file, err)
	}
	changed := false
	if len(saved) < n {
		if err := reg.EnsureOrg(ctx, org, orgName); err != nil {
			return nil, nil, err
		}
	}
	for i := len(saved); i < n; i++ {
		c, err := reg.Register(ctx, org, fmt.Sprintf("sim device %d", i+1))
		if err != nil {
			return nil, nil, err
		}
		saved = append(saved, simDevice{DeviceID: c.DeviceID, Secret: c.Secret})
		changed = true
	}
	creds := make([]sim.Credential, n)
	people := map[string]string{}
	for i := range n {
		d := &saved[i]
		creds[i] = sim.Credential{DeviceID: d.DeviceID, Secret: d.Secret}
		if !isWorker(i, workers) {
			continue
		}
		if d.PersonID == "" {
			id, err := device.NewPersonID()
			if err != nil {
				return nil, nil, err
			}
			p := store.Person{ID: id, OrgID: org, Kind: store.PersonWorker, Name: fmt.Sprintf("Sim worker %d", i+1), CreatedAt: time.Now().UTC()}
			if err := st.CreatePerson(ctx, p); err != nil {
				return nil, nil, fmt.Errorf("create a simulated worker: %w", err)
			}
			if err := st.AssignDevice(ctx, d.DeviceID, id); err != nil {
				return nil, nil, fmt.Errorf("assign simulated device %s to its worker: %w", d.DeviceID, err)
			}
			d.PersonID, changed = id, true
		}
		people[d.DeviceID] = d.PersonID
	}
	if !changed {
		return creds, people, nil
	}
	out, err := json.MarshalIndent(saved, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(file, out, 0o600); err != nil {
		return nil, nil, fmt.Errorf("save simulated device credentials: %w", err)
	}
	return creds, people, nil
}

// readCreds reads a credentials file: the objects printed by 'vigil device
// add --json', one after another, or a JSON list of them. An entry may
// also carry "person_id", the worker the device is assigned to ('vigil
// device assign'): it makes the device a lone worker.
func readCreds(file string) ([]sim.Credential, map[string]string, error) {
	type entry struct {
		device.Credentials
		PersonID string `json:"person_id"`
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read credentials: %w", err)
	}
	b = bytes.TrimSpace(b)
	var list []entry
	if len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, nil, fmt.Errorf("read credentials %s: %w", file, err)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(b))
		for dec.More() {
			var c entry
			if err := dec.Decode(&c); err != nil {
				return nil, nil, fmt.Errorf("read credentials %s: %w", file, err)
			}
			list = append(list, c)
		}
	}
	creds := make([]sim.Credential, 0, len(list))
	people := map[string]string{}
	for i, c := range list {
		if c.DeviceID == "" || c.Secret == "" {
			return nil, nil, fmt.Errorf("read credentials %s: entry %d lacks device_id or secret", file, i)
		}
		creds = append(creds, sim.Credential{DeviceID: c.DeviceID, Secret: c.Secret})
		if c.PersonID != "" {
			people[c.DeviceID] = c.PersonID
		}
	}
	return creds, people, nil
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
