package app_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"vigil/internal/gateway/gt06"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

// TestGT06Tracker: with trackers.gt06_listen set, a GT06 tracker whose
// IMEI is registered to a device logs in over TCP, its SOS alarm is
// acknowledged only once durable and raises a critical SOS alert of that
// device with the alarm's position, its location is stored as the
// device's position, and revoking the device closes the connection and
// refuses the next login. An unregistered IMEI is refused.
func TestGT06Tracker(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.Trackers.GT06Listen = "127.0.0.1:0"
	a := vigiltest.StartApp(t, cfg)
	ctx := context.Background()
	c := register(t, a)
	const imei = "490154203237518"
	if err := a.Store().SetDeviceIMEI(ctx, c.DeviceID, imei); err != nil {
		t.Fatal(err)
	}

	login := func() net.Conn {
		t.Helper()
		conn, err := net.DialTimeout("tcp", a.Addr("gt06"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.Write(gt06.EncodeLogin(imei, 1)); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	readAck := func(conn net.Conn) ([]byte, error) {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 10)
		_, err := io.ReadFull(conn, b)
		return b, err
	}

	conn := login()
	if got, err := readAck(conn); err != nil || string(got) != string(gt06.Ack(gt06.ProtoLogin, 1)) {
		t.Fatalf("login ack %x %v", got, err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if _, err := conn.Write(gt06.EncodeLocation(now.Add(-time.Second), 53.80075, -1.54912, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := readAck(conn); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(gt06.EncodeAlarm(now, 53.8008, -1.5492, gt06.AlarmSOS, 4, 3)); err != nil {
		t.Fatal(err)
	}
	if got, err := readAck(conn); err != nil || string(got) != string(gt06.Ack(gt06.ProtoAlarm, 3)) {
		t.Fatalf("SOS ack %x %v", got, err)
	}
	var sos store.Alert
	eventually(t, "the SOS alert", func() bool {
		as, err := a.Store().ListAlerts(ctx, store.AlertFilter{DeviceID: c.DeviceID, Kind: "sos"})
		if err != nil || len(as) != 1 {
			return false
		}
		sos = as[0]
		return true
	})
	if sos.Severity != "critical" || sos.Position == nil || sos.Position.Lat < 53.8007 || sos.Position.Lat > 53.8009 {
		t.Errorf("SOS alert %+v position %+v", sos, sos.Position)
	}
	eventually(t, "the tracker's position", func() bool {
		d, err := a.Store().GetDevice(ctx, c.DeviceID)
		return err == nil && d.State.LastPosition != nil && d.State.Battery != nil && *d.State.Battery == 50
	})

	// Revoked: cut off, and refused at the next login.
	if _, closed, err := a.RevokeDevice(ctx, c.DeviceID); err != nil || !closed {
		t.Fatalf("revoke: closed %v, %v", closed, err)
	}
	if _, err := readAck(conn); !errors.Is(err, io.EOF) && !isConnReset(err) {
		t.Errorf("after revocation the connection answered: %v", err)
	}
	again := login()
	if _, err := readAck(again); err == nil {
		t.Error("a revoked device's tracker logged in again")
	}

	// An IMEI nobody registered is refused.
	other, err := net.DialTimeout("tcp", a.Addr("gt06"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Write(gt06.EncodeLogin("864717003283581", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := readAck(other); err == nil {
		t.Error("an unregistered IMEI got a login ACK")
	}
}

func isConnReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// TestGT06SharedIMEI (security requirement 6, its GT06 half): two logins of
// one IMEI alternating from 127.0.0.2 and 127.0.0.3, ten times, record
// exactly one "device identity shared" security event naming both
// sources; each login takes the session over.
func TestGT06SharedIMEI(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.Trackers.GT06Listen = "127.0.0.1:0"
	a := vigiltest.StartApp(t, cfg)
	ctx := context.Background()
	c := register(t, a)
	const imei = "490154203237518"
	if err := a.Store().SetDeviceIMEI(ctx, c.DeviceID, imei); err != nil {
		t.Fatal(err)
	}
	var prev net.Conn
	for i := range 10 {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP([]string{"127.0.0.2", "127.0.0.3"}[i%2])}}
		conn, err := d.Dial("tcp", a.Addr("gt06"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(gt06.EncodeLogin(imei, uint16(i))); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(conn, make([]byte, 10)); err != nil {
			t.Fatalf("login %d: %v (takeover must admit it)", i, err)
		}
		if prev != nil {
			_ = prev.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := prev.Read(make([]byte, 1)); err == nil {
				t.Fatalf("login %d did not replace the one before", i)
			}
		}
		prev = conn
	}
	var recs []store.AuditRecord
	eventually(t, "the security event", func() bool {
		var err error
		recs, err = a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "acme", Action: "device.identity_shared"})
		return err == nil && len(recs) > 0
	})
	if len(recs) != 1 || recs[0].ObjectID != c.DeviceID || recs[0].Severity != "high" || !strings.Contains(recs[0].Details, "127.0.0.2 127.0.0.3") {
		t.Errorf("identity-shared events %+v, want one for %s naming both sources", recs, c.DeviceID)
	}
}
