package sim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"vigil/internal/device"
	"vigil/internal/geofence"
	"vigil/internal/sim"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
)

// eventually polls cond until it holds or the deadline passes; it waits on
// the asynchronous server, it does not assert a duration.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWorkersAgainstServer runs two simulated lone workers against a
// real server on loopback: a diligent one, who answers every reminder with
// the device's check-in button, and a forgetful one. Both start sessions
// through the JSON API (the diligent one after ending a session left
// over from "an earlier run"); the diligent worker's check-ins reach the
// session; pre-alerts of the devices' falls are cancelled with the cancel
// button; the forgotten check-in raises missed_checkin one interval (the
// engine's minimum, 1 min) after the start (skipped with -short); when
// the simulator stops, the workers end their sessions.
func TestWorkersAgainstServer(t *testing.T) {
	cfg := vigiltest.Config(t)
	cfg.Safety.RemindBefore = 55 * time.Second // interval 1m: a reminder 5 s after each check-in
	a := vigiltest.StartApp(t, cfg)
	ctx := context.Background()
	st := a.Store()
	if err := a.Devices().EnsureOrg(ctx, "acme", "Acme Care"); err != nil {
		t.Fatal(err)
	}
	var creds []sim.Credential
	var persons []string
	people := map[string]string{}
	for _, name := range []string{"Dee Diligent", "Fay Forgetful"} {
		c, err := a.Devices().Register(ctx, "acme", "pendant")
		if err != nil {
			t.Fatal(err)
		}
		pid, err := device.NewPersonID()
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreatePerson(ctx, store.Person{ID: pid, OrgID: "acme", Kind: store.PersonWorker, Name: name, CreatedAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		if err := st.AssignDevice(ctx, c.DeviceID, pid); err != nil {
			t.Fatal(err)
		}
		creds = append(creds, sim.Credential{DeviceID: c.DeviceID, Secret: c.Secret})
		persons = append(persons, pid)
		people[c.DeviceID] = pid
	}
	diligent, forgetful := persons[0], persons[1]

	tlsCfg := vigiltest.ClientTLS(t, a)
	api, err := sim.NewAPI(a.Addr("api"), vigiltest.APIToken(t, a, "acme"), tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	if n, err := api.ImportZones(ctx, "acme", sim.CircleZone("acme-sim-area", "simulated area", [2]float64{53.8, -1.55}, 2000)); err != nil || n != 1 {
		t.Fatalf("import the zone: %d %v", n, err)
	}
	var ae *sim.APIError
	if _, err := api.StartSession(ctx, sim.StartSession{PersonID: "pnobody", Duration: time.Hour}); !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "person_id" || ae.Temporary() {
		t.Fatalf("start for an unknown person: %v, want a 400 naming person_id", err)
	}
	stale, err := api.StartSession(ctx, sim.StartSession{PersonID: diligent, Duration: time.Hour, Note: "flat 7, dog in the hall"})
	if err != nil {
		t.Fatal(err)
	}

	logs := &logBuffer{}
	s, err := sim.New(sim.Config{
		MQTTAddr: a.Addr("mqtt"), APIAddr: a.Addr("api"), APIToken: vigiltest.APIToken(t, a, "acme"), TLS: tlsCfg, Devices: creds,
		Rate: 1, HeartbeatEvery: 5 * time.Second, MotionEvery: 100 * time.Millisecond, CancelOdds: 1,
		Seed: 1, Logger: logs.logger(),
		Workers: sim.WorkerConfig{
			People: people, Roles: []sim.Role{sim.RoleDiligent, sim.RoleForgetful},
			CheckinInterval: time.Minute, Grace: time.Second, SessionLength: 2 * time.Hour, React: 200 * time.Millisecond,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	defer stop()

	sessionOf := func(person string) (store.Session, bool) {
		list, err := st.ListSessions(ctx, store.SessionFilter{OrgID: "acme", PersonID: person, ActiveOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 {
			return store.Session{}, false
		}
		return list[0], true
	}
	eventually(t, 30*time.Second, "both workers in a session of their own", func() bool {
		d, ok1 := sessionOf(diligent)
		_, ok2 := sessionOf(forgetful)
		return ok1 && ok2 && d.ID != stale.ID
	})
	if got, err := st.GetSession(ctx, stale.ID); err != nil || got.State != store.SessionEnded {
		t.Errorf("the left-over session: %+v %v, want ended", got, err)
	}
	for i, p := range persons {
		sess, _ := sessionOf(p)
		if sess.DeviceID != creds[i].DeviceID || sess.CheckinInterval != time.Minute || sess.Grace != time.Second {
			t.Errorf("session of worker %d: %+v", i, sess)
		}
	}

	eventually(t, 30*time.Second, "the diligent worker's check-in, answering a reminder", func() bool {
		sess, ok := sessionOf(diligent)
		return ok && sess.LastCheckin.After(sess.StartedAt) && s.Stats().RemindersAnswered > 0
	})
	eventually(t, 30*time.Second, "a fall's pre-alert cancelled with the device's button", func() bool {
		list, err := st.ListAlerts(ctx, store.AlertFilter{OrgID: "acme", Kind: "fall", States: []store.AlertState{store.AlertCancelled}})
		return err == nil && len(list) > 0 && s.Stats().Cancels > 0
	})
	if sess, _ := sessionOf(forgetful); !sess.LastCheckin.Equal(sess.StartedAt) {
		t.Errorf("the forgetful worker checked in: %+v", sess)
	}
	if st := s.Stats(); st.CommandTypes["checkin_reminder"] < 2 || st.CommandTypes["pre_alert"] == 0 || st.Forgotten != 1 || st.Checkins == 0 {
		t.Errorf("stats: commands %v, forgotten %d, check-ins %d", st.CommandTypes, st.Forgotten, st.Checkins)
	}

	if testing.Short() {
		t.Log("-short: not waiting a minute for the missed check-in")
	} else {
		eventually(t, 2*time.Minute, "missed_checkin for the forgotten check-in", func() bool {
			list, err := st.ListAlerts(ctx, store.AlertFilter{OrgID: "acme", Kind: "missed_checkin"})
			return err == nil && len(list) > 0
		})
		list, err := st.ListAlerts(ctx, store.AlertFilter{OrgID: "acme", Kind: "missed_checkin"})
		if err != nil {
			t.Fatal(err)
		}
		sess, _ := sessionOf(forgetful)
		if len(list) != 1 || list[0].PersonID != forgetful || list[0].SessionID != sess.ID || list[0].State != store.AlertRaised {
			t.Errorf("missed check-ins: %+v, want one, raised, for the forgetful worker's session %s", list, sess.ID)
		}
	}

	stop()
	if list, err := st.ListSessions(ctx, store.SessionFilter{OrgID: "acme", ActiveOnly: true}); err != nil || len(list) != 0 {
		t.Errorf("active sessions after the simulator stopped: %+v %v", list, err)
	}
	if st := s.Stats(); st.SessionsStarted != 2 || st.SessionsEnded != 2 || st.InSession != 0 || st.APIErrors != 0 {
		t.Errorf("sessions started %d, ended %d, in session %d, API errors %d; want 2, 2, 0, 0",
			st.SessionsStarted, st.SessionsEnded, st.InSession, st.APIErrors)
	}
	checkLogs(t, logs.String(), creds[0].Secret, creds[1].Secret, "Dee", "Fay", "flat 7", "simulated visit")
}

// TestCircleZone: the zone the demo imports is a valid must_stay_inside
// circle around the centre.
func TestCircleZone(t *testing.T) {
	fs, err := geofence.ParseGeoJSON(sim.CircleZone("demo-area", "demo area", [2]float64{53.8, -1.55}, 2000))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].ID != "demo-area" || fs[0].Rule != geofence.MustStayInside || fs[0].Name != "demo area" {
		t.Fatalf("got %+v", fs)
	}
	for _, tc := range []struct {
		lat, lon float64
		want     geofence.Side
	}{
		{53.8, -1.55, geofence.Inside},
		{53.8 + 1500/111320.0, -1.55, geofence.Inside},
		{53.8 + 2300/111320.0, -1.55, geofence.Outside},
	} {
		if got := fs[0].Relate(geofence.Fix{Lat: tc.lat, Lon: tc.lon, AccuracyM: 10}); got != tc.want {
			t.Errorf("%v,%v: got %v, want %v", tc.lat, tc.lon, got, tc.want)
		}
	}
}
