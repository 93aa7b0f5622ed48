package app_test

import (
	"context"
	"testing"
	"time"

	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

// TestPersonLeavesRevokesDevices (issue 8: "revoking a device (or its
// person leaving) closes its live connection within 5 s"): when a worker
// leaves, every device assigned to them is revoked and unassigned, the
// live mutual-TLS connection closes, the certificate is refused at the
// next handshake, and the step is audited; another person's device is
// untouched. A reason is required.
func TestPersonLeavesRevokesDevices(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.MQTT.ClientCerts = "required"
	a := vigiltest.StartApp(t, cfg)
	ctx := context.Background()
	c, cert := enrolled(t, a)
	other, otherCert := enrolled(t, a)
	for _, p := range []store.Person{{ID: "p-leaver", OrgID: "acme", Kind: store.PersonWorker, Name: "Lee"}, {ID: "p-stays", OrgID: "acme", Kind: store.PersonWorker, Name: "Sam"}} {
		p.CreatedAt = time.Now()
		if err := a.Store().CreatePerson(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Store().AssignDevice(ctx, c.DeviceID, "p-leaver"); err != nil {
		t.Fatal(err)
	}
	if err := a.Store().AssignDevice(ctx, other.DeviceID, "p-stays"); err != nil {
		t.Fatal(err)
	}
	_, gone, err := connectWatched(t, a, c, cert)
	if err != nil {
		t.Fatal(err)
	}
	_, otherGone, err := connectWatched(t, a, other, otherCert)
	if err != nil {
		t.Fatal(err)
	}

	api := newAPIClient(t, a)
	if code := api.do("POST", "/api/v1/people/p-leaver/leave", `{"reason":""}`, nil); code != 400 {
		t.Errorf("leave without a reason: %d, want 400", code)
	}
	var res struct {
		PersonID string `json:"person_id"`
		Revoked  []struct {
			DeviceID string `json:"device_id"`
			Closed   bool   `json:"connection_closed"`
		} `json:"revoked"`
	}
	start := time.Now()
	if code := api.do("POST", "/api/v1/people/p-leaver/leave", `{"reason":"left the service on 30 November"}`, &res); code != 200 {
		t.Fatalf("leave: %d", code)
	}
	if len(res.Revoked) != 1 || res.Revoked[0].DeviceID != c.DeviceID || !res.Revoked[0].Closed {
		t.Errorf("leave answered %+v", res)
	}
	select {
	case <-gone:
		t.Logf("the leaver's connection closed %v after the request", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the leaver's device stayed connected for 5 s")
	}
	if _, _, err := connectWatched(t, a, c, cert); err == nil {
		t.Error("the leaver's certificate connected again")
	}
	d, err := a.Store().GetDevice(ctx, c.DeviceID)
	if err != nil || d.DisabledAt.IsZero() || d.PersonID != "" {
		t.Errorf("the leaver's device: %+v %v, want disabled and unassigned", d, err)
	}
	select {
	case <-otherGone:
		t.Error("another person's device was cut off")
	default:
	}
	recs, err := a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "person.leave"})
	if err != nil || len(recs) != 1 || recs[0].ObjectID != "p-leaver" || recs[0].Severity != "high" {
		t.Errorf("audit: %+v %v", recs, err)
	}
}
