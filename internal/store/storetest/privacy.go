package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"vigil/internal/store"
)

func testDataKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetDataKey(ctx, "k1")
	mustErr(t, err, store.ErrNotFound, "get unknown key")
	_, err = s.GetOwnerDataKey(ctx, "person:p1")
	mustErr(t, err, store.ErrNotFound, "get unknown owner's key")
	k1 := store.DataKey{ID: "k1", Owner: "person:p1", KEKID: "kek-a", Wrapped: []byte{1, 2, 3}, CreatedAt: at(0)}
	got, err := s.CreateDataKey(ctx, k1)
	must(t, err, "create key")
	if diff := cmp.Diff(k1, got, opts); diff != "" {
		t.Errorf("created key (-want +got):\n%s", diff)
	}
	// A racing creator for the same owner gets the stored key.
	got, err = s.CreateDataKey(ctx, store.DataKey{ID: "k1b", Owner: "person:p1", KEKID: "kek-a", Wrapped: []byte{9}, CreatedAt: at(time.Second)})
	must(t, err, "create a second key for the owner")
	if got.ID != "k1" {
		t.Errorf("second create returned key %s, want the stored k1", got.ID)
	}
	_, err = s.GetDataKey(ctx, "k1b")
	mustErr(t, err, store.ErrNotFound, "the losing key was stored")
	for _, k := range []store.DataKey{
		{ID: "k2", Owner: "person:p2", KEKID: "kek-a", Wrapped: []byte{4}, CreatedAt: at(0)},
		{ID: "k3", Owner: "org:acme", KEKID: "kek-b", Wrapped: []byte{5}, CreatedAt: at(0)},
	} {
		_, err := s.CreateDataKey(ctx, k)
		must(t, err, "create key "+k.ID)
	}
	byKEK, err := s.CountDataKeysByKEK(ctx)
	must(t, err, "count")
	if diff := cmp.Diff(map[string]int{"kek-a": 2, "kek-b": 1}, byKEK); diff != "" {
		t.Errorf("CountDataKeysByKEK (-want +got):\n%s", diff)
	}
	ok, err := s.RewrapDataKey(ctx, "k1", "kek-a", "kek-b", []byte{7, 7})
	must(t, err, "rewrap")
	if !ok {
		t.Error("rewrap of a key wrapped by kek-a changed nothing")
	}
	ok, err = s.RewrapDataKey(ctx, "k1", "kek-a", "kek-c", []byte{8})
	must(t, err, "stale rewrap")
	if ok {
		t.Error("a rewrap naming the old KEK replaced a newer wrapping")
	}
	got, err = s.GetDataKey(ctx, "k1")
	must(t, err, "get key")
	if got.KEKID != "kek-b" || string(got.Wrapped) != string([]byte{7, 7}) {
		t.Errorf("after rewrap: kek %s wrapped %x", got.KEKID, got.Wrapped)
	}
	page, err := s.ListLiveDataKeys(ctx, "", 2)
	must(t, err, "list live")
	if len(page) != 2 || page[0].ID != "k1" || page[1].ID != "k2" {
		t.Errorf("ListLiveDataKeys page 1 = %+v", page)
	}
	page, err = s.ListLiveDataKeys(ctx, "k2", 2)
	must(t, err, "list live")
	if len(page) != 1 || page[0].ID != "k3" {
		t.Errorf("ListLiveDataKeys page 2 = %+v", page)
	}

	done, err := s.DestroyDataKey(ctx, "person:p1", at(time.Hour))
	must(t, err, "destroy")
	if !done {
		t.Error("destroy of a live key reported false")
	}
	got, err = s.GetOwnerDataKey(ctx, "person:p1")
	must(t, err, "get destroyed key")
	if got.Wrapped != nil || !got.DestroyedAt.Truncate(time.Microsecond).Equal(at(time.Hour).Truncate(time.Microsecond)) {
		t.Errorf("destroyed key: wrapped %x destroyed %v", got.Wrapped, got.DestroyedAt)
	}
	done, err = s.DestroyDataKey(ctx, "person:p1", at(2*time.Hour))
	must(t, err, "destroy again")
	if done {
		t.Error("second destroy reported true")
	}
	ok, err = s.RewrapDataKey(ctx, "k1", "kek-b", "kek-c", []byte{1})
	must(t, err, "rewrap destroyed")
	if ok {
		t.Error("a destroyed key was re-wrapped")
	}
	// An owner without a key gets a tombstone; no key is created later.
	done, err = s.DestroyDataKey(ctx, "person:never", at(time.Hour))
	must(t, err, "destroy keyless")
	if done {
		t.Error("destroy of a keyless owner reported true")
	}
	got, err = s.CreateDataKey(ctx, store.DataKey{ID: "k9", Owner: "person:never", KEKID: "kek-b", Wrapped: []byte{1}, CreatedAt: at(3 * time.Hour)})
	must(t, err, "create after tombstone")
	if got.Wrapped != nil || got.DestroyedAt.IsZero() {
		t.Errorf("a key was created for an erased owner: %+v", got)
	}
	byKEK, err = s.CountDataKeysByKEK(ctx)
	must(t, err, "count")
	if diff := cmp.Diff(map[string]int{"kek-a": 1, "kek-b": 1}, byKEK); diff != "" {
		t.Errorf("CountDataKeysByKEK after destroy (-want +got):\n%s", diff)
	}
}

func testErasePerson(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	must(t, s.AssignDevice(ctx, "d1", "p1"), "assign")
	must(t, s.AssignDevice(ctx, "d9", "p9"), "assign other")
	must(t, s.SetPersonNotes(ctx, "p1", "asthma"), "notes")
	must(t, s.PutContact(ctx, store.Contact{ID: "c1", OrgID: "acme", PersonID: "p1", Name: "Sis", Phone: "+447700900001", CreatedAt: at(0)}), "contact")
	must(t, s.PutContact(ctx, store.Contact{ID: "c9", OrgID: "beta", PersonID: "p9", Name: "Son", CreatedAt: at(0)}), "contact")
	must(t, s.LinkCarer(ctx, "u3", "p1"), "carer")
	must(t, s.SetUserPerson(ctx, "u1", "p1"), "link user")
	must(t, s.PutPersonPhoto(ctx, store.PersonPhoto{PersonID: "p1", ContentType: "image/jpeg", Bytes: []byte{1}, UpdatedAt: at(0)}), "photo")
	must(t, s.CreateBreakGlass(ctx, store.BreakGlass{ID: "g1", OrgID: "acme", UserID: "u2", PersonID: "p1", Reason: "r", CreatedAt: at(0), ExpiresAt: at(time.Hour)}), "grant")
	apply(t, s, 4,
		posEv("d1", "m1", at(time.Second), at(time.Second), 51.5, -0.1),
		ev("d1", "m2", at(2*time.Second), at(2*time.Second)),
		posEv("d9", "m3", at(time.Second), at(time.Second), 52, 0),
		ev("d9", "m4", at(2*time.Second), at(2*time.Second)))
	ids, err := s.ListPersonCarers(ctx, "p1")
	must(t, err, "list carers")
	if diff := cmp.Diff([]string{"u3"}, ids, opts); diff != "" {
		t.Errorf("ListPersonCarers (-want +got):\n%s", diff)
	}

	// An active session or an open alert blocks erasure.
	must(t, s.CreateSession(ctx, store.Session{ID: "s1", OrgID: "acme", PersonID: "p1", Note: "flat 3", StartedAt: at(0), ExpectedEnd: at(time.Hour)}), "session")
	_, err = s.ErasePerson(ctx, "p1")
	mustErr(t, err, store.ErrConflict, "erase with an active session")
	sess, err := s.GetSession(ctx, "s1")
	must(t, err, "get session")
	sess.State, sess.EndedAt, sess.EndedBy = store.SessionEnded, at(time.Minute), "api"
	_, err = s.UpdateSession(ctx, sess)
	must(t, err, "end session")
	a, _, err := s.RaiseAlert(ctx, sosAlert("a1", at(time.Minute)), store.AlertEntry{At: at(time.Minute), Actor: "device:d1", Action: "raised", Detail: "sos button", Cause: "c1"})
	must(t, err, "raise")
	_, err = s.ErasePerson(ctx, "p1")
	mustErr(t, err, store.ErrConflict, "erase with an open alert")
	a.State, a.ClosedAt, a.ClosedBy, a.Outcome = store.AlertResolved, at(time.Hour), "u2", "false_alarm"
	_, err = s.UpdateAlert(ctx, a, store.AlertEntry{At: at(time.Hour), Actor: "user:u2", Action: "resolved"})
	must(t, err, "resolve")
	_, _, err = s.BeginDelivery(ctx, store.Delivery{Key: "a1/x", AlertID: "a1", OrgID: "acme", Event: "raised", Channel: "sms", Target: "+447700900001", CreatedAt: at(time.Minute)})
	must(t, err, "delivery")

	got, err := s.ErasePerson(ctx, "p1")
	must(t, err, "erase")
	want := store.ErasedRows{Person: 1, MedicalNotes: 1, Contacts: 1, CarerLinks: 1, Photos: 1, Sessions: 1, Positions: 1, Events: 1,
		BreakGlass: 1, DevicesUnlinked: 1, UsersUnlinked: 1, AlertsKept: 1, AlertPositions: 1, DeliveriesMasked: 1}
	// Text stored in plaintext (a store without the encryption
	// decorator) is cleared; sealed text is left to the shredded key.
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(store.ErasedRows{}, "PlaintextCleared")); diff != "" {
		t.Errorf("ErasePerson (-want +got):\n%s", diff)
	}
	_, err = s.GetPerson(ctx, "p1")
	mustErr(t, err, store.ErrNotFound, "erased person")
	_, err = s.GetContact(ctx, "c1")
	mustErr(t, err, store.ErrNotFound, "erased contact")
	_, err = s.GetPersonPhoto(ctx, "p1")
	mustErr(t, err, store.ErrNotFound, "erased photo")
	_, err = s.GetSession(ctx, "s1")
	mustErr(t, err, store.ErrNotFound, "erased session")
	d, err := s.GetDevice(ctx, "d1")
	must(t, err, "device kept")
	if d.PersonID != "" || d.State.LastPosition != nil {
		t.Errorf("device after erasure: person %q position %v", d.PersonID, d.State.LastPosition)
	}
	if u := user(t, s, "u1"); u.PersonID != "" {
		t.Errorf("user still linked to %s", u.PersonID)
	}
	kept, err := s.GetAlert(ctx, "a1")
	must(t, err, "kept alert")
	if kept.Position != nil || kept.PersonID != "p1" {
		t.Errorf("kept alert: position %v person %q; want no position, the person's id", kept.Position, kept.PersonID)
	}
	if kept.Note == "visit at flat 3" || kept.Detail == "button" {
		t.Errorf("kept alert text still readable: note %q detail %q", kept.Note, kept.Detail)
	}
	for _, e := range kept.Timeline {
		if e.Detail == "sos button" {
			t.Errorf("kept alert entry %d still readable: %q", e.Seq, e.Detail)
		}
	}
	dl, err := s.ListDeliveries(ctx, "a1")
	must(t, err, "deliveries")
	if len(dl) != 1 || dl[0].Target != "" {
		t.Errorf("deliveries after erasure: %+v", dl)
	}
	pos, err := s.Positions(ctx, "d1", time.Time{}, time.Time{})
	must(t, err, "positions")
	if len(pos) != 0 {
		t.Errorf("%d positions left", len(pos))
	}
	// The other organisation's person is untouched.
	pos, err = s.Positions(ctx, "d9", time.Time{}, time.Time{})
	must(t, err, "positions of d9")
	evs, err := s.ListEvents(ctx, store.EventFilter{DeviceID: "d9"})
	must(t, err, "events of d9")
	if len(pos) != 1 || len(evs) != 1 {
		t.Errorf("another person's data was erased: %d positions, %d events", len(pos), len(evs))
	}
	if _, err := s.GetContact(ctx, "c9"); err != nil {
		t.Errorf("another person's contact: %v", err)
	}
	_, err = s.ErasePerson(ctx, "p1")
	mustErr(t, err, store.ErrNotFound, "erase twice")

	// The ledger.
	e := store.Erasure{PersonID: "p1", OrgID: "acme", ErasedAt: at(2 * time.Hour), ReceiptID: "r1", Receipt: `{"id":"r1"}`}
	must(t, s.PutErasure(ctx, e), "put erasure")
	mustErr(t, s.PutErasure(ctx, e), store.ErrConflict, "put erasure twice")
	ge, err := s.GetErasure(ctx, "p1")
	must(t, err, "get erasure")
	if diff := cmp.Diff(e, ge, opts); diff != "" {
		t.Errorf("GetErasure (-want +got):\n%s", diff)
	}
	_, err = s.GetErasure(ctx, "p9")
	mustErr(t, err, store.ErrNotFound, "get erasure of someone not erased")
	must(t, s.PutErasure(ctx, store.Erasure{PersonID: "p0", OrgID: "acme", ErasedAt: at(time.Hour), ReceiptID: "r0", Receipt: "{}"}), "put erasure")
	all, err := s.ListErasures(ctx)
	must(t, err, "list erasures")
	if len(all) != 2 || all[0].PersonID != "p0" || all[1].PersonID != "p1" {
		t.Errorf("ListErasures = %+v; want p0, p1", all)
	}
}
