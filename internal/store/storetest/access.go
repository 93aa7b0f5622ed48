package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/store"
)

// seedUsers runs seed and adds users "u1" (ann@example.org), "u2"
// (bob@example.org) and "u3" (cy@example.org), none with a membership.
func seedUsers(t *testing.T, s store.Store) {
	t.Helper()
	seed(t, s)
	ctx := context.Background()
	for _, u := range []store.User{
		{ID: "u1", Email: "ann@example.org", Name: "Ann", CreatedAt: at(0)},
		{ID: "u2", Email: "bob@example.org", Name: "Bob", CreatedAt: at(0)},
		{ID: "u3", Email: "cy@example.org", Name: "Cy", CreatedAt: at(0)},
	} {
		must(t, s.CreateUser(ctx, u), "create user "+u.ID)
	}
}

func user(t *testing.T, s store.Store, id string) store.User {
	t.Helper()
	u, err := s.GetUser(context.Background(), id)
	if err != nil {
		t.Fatalf("GetUser(%s): %v", id, err)
	}
	return u
}

func userIDs(us []store.User) []string {
	var ids []string
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	return ids
}

func testAccessUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	u := store.User{
		ID: "u1", Email: "  Ann.Smith@Example.ORG ", Name: "Ann Smith", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Provider: true, PersonID: "p1", TOTPSeed: []byte{0, 1, 2, 255}, TOTPLastStep: 42, OIDCSubject: "https://idp.example issuer-sub-1",
		CreatedAt: at(time.Second), PasswordChangedAt: at(2 * time.Second), DisabledAt: at(3 * time.Second),
	}
	must(t, s.CreateUser(ctx, u), "create user")
	want := u
	want.Email = "ann.smith@example.org"
	if diff := cmp.Diff(want, user(t, s, "u1"), opts); diff != "" {
		t.Errorf("GetUser (-want +got):\n%s", diff)
	}
	// Lookups by email ignore case and surrounding space.
	for _, email := range []string{"ann.smith@example.org", "ANN.SMITH@EXAMPLE.ORG", " Ann.Smith@example.org\t"} {
		got, err := s.GetUserByEmail(ctx, email)
		must(t, err, "get user by email")
		if got.ID != "u1" {
			t.Errorf("GetUserByEmail(%q) = %s, want u1", email, got.ID)
		}
	}
	_, err := s.GetUserByEmail(ctx, "nobody@example.org")
	mustErr(t, err, store.ErrNotFound, "get user by unknown email")
	got, err := s.GetUserByOIDC(ctx, "https://idp.example issuer-sub-1")
	must(t, err, "get user by oidc")
	if got.ID != "u1" {
		t.Errorf("GetUserByOIDC = %s, want u1", got.ID)
	}
	for _, sub := range []string{"", "https://idp.example other"} {
		_, err = s.GetUserByOIDC(ctx, sub)
		mustErr(t, err, store.ErrNotFound, fmt.Sprintf("get user by oidc %q", sub))
	}
	_, err = s.GetUser(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get unknown user")

	// A minimal user: no password, person, seed or subject.
	must(t, s.CreateUser(ctx, store.User{ID: "u2", Email: "bob@example.org", Name: "Bob", CreatedAt: at(0)}), "create minimal user")
	if diff := cmp.Diff(store.User{ID: "u2", Email: "bob@example.org", Name: "Bob", CreatedAt: at(0)}, user(t, s, "u2"), opts); diff != "" {
		t.Errorf("GetUser minimal (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		u    store.User
		want error
	}{
		{"duplicate id", store.User{ID: "u1", Email: "x@example.org", Name: "x"}, store.ErrConflict},
		{"duplicate email in other case", store.User{ID: "u9", Email: "BOB@example.org", Name: "x"}, store.ErrConflict},
		{"duplicate oidc subject", store.User{ID: "u9", Email: "y@example.org", Name: "x", OIDCSubject: "https://idp.example issuer-sub-1"}, store.ErrConflict},
		{"unknown person", store.User{ID: "u9", Email: "z@example.org", Name: "x", PersonID: "nope"}, store.ErrNotFound},
	} {
		if err := s.CreateUser(ctx, tc.u); !errors.Is(err, tc.want) {
			t.Errorf("CreateUser %s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := s.CreateUser(ctx, store.User{ID: "u9", Email: "  ", Name: "x"}); err == nil {
		t.Error("CreateUser with an empty email: no error")
	}

	// Setters change one thing each; unknown users are ErrNotFound.
	must(t, s.SetPasswordHash(ctx, "u2", "$argon2id$new", at(time.Hour)), "set password")
	must(t, s.SetUserName(ctx, "u2", "Robert"), "set name")
	must(t, s.SetUserPerson(ctx, "u2", "p9"), "set person")
	must(t, s.SetOIDCSubject(ctx, "u2", "https://idp.example bob"), "set oidc subject")
	must(t, s.SetUserDisabled(ctx, "u2", at(2*time.Hour)), "disable user")
	wantBob := store.User{ID: "u2", Email: "bob@example.org", Name: "Robert", PasswordHash: "$argon2id$new", PersonID: "p9",
		OIDCSubject: "https://idp.example bob", CreatedAt: at(0), PasswordChangedAt: at(time.Hour), DisabledAt: at(2 * time.Hour)}
	if diff := cmp.Diff(wantBob, user(t, s, "u2"), opts); diff != "" {
		t.Errorf("after setters (-want +got):\n%s", diff)
	}
	mustErr(t, s.SetOIDCSubject(ctx, "u2", "https://idp.example issuer-sub-1"), store.ErrConflict, "take another user's oidc subject")
	mustErr(t, s.SetUserPerson(ctx, "u2", "nope"), store.ErrNotFound, "set unknown person")
	must(t, s.SetUserPerson(ctx, "u2", ""), "unlink person")
	must(t, s.SetOIDCSubject(ctx, "u2", ""), "unlink oidc subject")
	must(t, s.SetUserDisabled(ctx, "u2", time.Time{}), "enable user")
	wantBob.PersonID, wantBob.OIDCSubject, wantBob.DisabledAt = "", "", time.Time{}
	if diff := cmp.Diff(wantBob, user(t, s, "u2"), opts); diff != "" {
		t.Errorf("after unlinking (-want +got):\n%s", diff)
	}
	_, err = s.GetUserByOIDC(ctx, "https://idp.example bob")
	mustErr(t, err, store.ErrNotFound, "get user by unlinked oidc subject")
	// Unlinked subjects do not collide with each other.
	must(t, s.SetOIDCSubject(ctx, "u1", ""), "unlink second oidc subject")

	for name, err := range map[string]error{
		"SetPasswordHash":   s.SetPasswordHash(ctx, "nope", "h", at(0)),
		"SetUserName":       s.SetUserName(ctx, "nope", "x"),
		"SetUserPerson":     s.SetUserPerson(ctx, "nope", ""),
		"SetOIDCSubject":    s.SetOIDCSubject(ctx, "nope", "s"),
		"SetTOTP":           s.SetTOTP(ctx, "nope", []byte{1}, 0),
		"UseTOTPStep":       s.UseTOTPStep(ctx, "nope", 1),
		"SetUserDisabled":   s.SetUserDisabled(ctx, "nope", at(0)),
		"UnlinkCarer":       s.UnlinkCarer(ctx, "nope", "p1"),
		"DeleteMembership":  s.DeleteMembership(ctx, "nope", "acme"),
		"RemoveTeamMember":  s.RemoveTeamMember(ctx, "nope", "u1"),
		"SetPersonNotes":    s.SetPersonNotes(ctx, "nope", "x"),
		"SetOrgRequireWebA": s.SetOrgRequireWebAuthn(ctx, "nope", true),
	} {
		mustErr(t, err, store.ErrNotFound, name+" of unknown id")
	}

	list, err := s.ListUsers(ctx, "")
	must(t, err, "list users")
	// By email: ann.smith@ before bob@.
	if diff := cmp.Diff([]string{"u1", "u2"}, userIDs(list)); diff != "" {
		t.Errorf("ListUsers(\"\") (-want +got):\n%s", diff)
	}
}

func testAccessTOTP(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	must(t, s.SetTOTP(ctx, "u1", []byte("sealed-seed"), 4), "set totp")
	if u := user(t, s, "u1"); string(u.TOTPSeed) != "sealed-seed" || u.TOTPLastStep != 4 {
		t.Fatalf("after SetTOTP: seed %q, last step %d; want sealed-seed, 4", u.TOTPSeed, u.TOTPLastStep)
	}
	for _, tc := range []struct {
		step int64
		want error
	}{
		{4, store.ErrConflict}, // the enrolment step itself
		{5, nil},
		{5, store.ErrConflict}, // replay
		{3, store.ErrConflict}, // an older code
		{7, nil},
		{6, store.ErrConflict}, // skipped, now too old
	} {
		if err := s.UseTOTPStep(ctx, "u1", tc.step); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("UseTOTPStep(%d): got %v, want %v", tc.step, err, tc.want)
		}
	}
	if got := user(t, s, "u1").TOTPLastStep; got != 7 {
		t.Errorf("TOTPLastStep = %d, want 7", got)
	}
	// Removing the seed resets the step.
	must(t, s.SetTOTP(ctx, "u1", nil, 0), "remove totp")
	if u := user(t, s, "u1"); u.TOTPSeed != nil || u.TOTPLastStep != 0 {
		t.Errorf("after removal: seed %q, last step %d; want nil, 0", u.TOTPSeed, u.TOTPLastStep)
	}

	// Of many concurrent uses of one code, exactly one is accepted.
	must(t, s.SetTOTP(ctx, "u2", []byte("seed-2"), 0), "set totp")
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = s.UseTOTPStep(ctx, "u2", 5)
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("concurrent UseTOTPStep %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent UseTOTPStep(5) succeeded, want exactly 1", ok, n)
	}
	if got := user(t, s, "u2").TOTPLastStep; got != 5 {
		t.Errorf("TOTPLastStep after the race = %d, want 5", got)
	}
}

func testAccessMemberships(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	must(t, s.PutMembership(ctx, store.Membership{UserID: "u1", OrgID: "beta", Role: store.RoleAuditor, CreatedAt: at(time.Minute)}), "put")
	must(t, s.PutMembership(ctx, store.Membership{UserID: "u1", OrgID: "acme", Role: store.RoleResponder, CreatedAt: at(time.Minute)}), "put")
	// Changing the role keeps when the membership began.
	must(t, s.PutMembership(ctx, store.Membership{UserID: "u1", OrgID: "acme", Role: store.RoleAdmin, CreatedAt: at(time.Hour)}), "change role")
	got, err := s.ListMemberships(ctx, "u1")
	must(t, err, "list memberships")
	want := []store.Membership{
		{UserID: "u1", OrgID: "acme", Role: store.RoleAdmin, CreatedAt: at(time.Minute)},
		{UserID: "u1", OrgID: "beta", Role: store.RoleAuditor, CreatedAt: at(time.Minute)},
	}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("ListMemberships (-want +got):\n%s", diff)
	}
	mustErr(t, s.PutMembership(ctx, store.Membership{UserID: "u1", OrgID: "nope", Role: store.RoleAdmin}), store.ErrNotFound, "membership in unknown org")
	mustErr(t, s.PutMembership(ctx, store.Membership{UserID: "nope", OrgID: "acme", Role: store.RoleAdmin}), store.ErrNotFound, "membership of unknown user")
	if err := s.PutMembership(ctx, store.Membership{UserID: "u2", OrgID: "acme", Role: "overlord"}); err == nil {
		t.Error("PutMembership with an unknown role: no error")
	}
	list, err := s.ListMemberships(ctx, "u3")
	must(t, err, "list memberships of a user without any")
	if len(list) != 0 {
		t.Errorf("ListMemberships(u3) = %v, want none", list)
	}

	must(t, s.DeleteMembership(ctx, "u1", "beta"), "delete membership")
	mustErr(t, s.DeleteMembership(ctx, "u1", "beta"), store.ErrNotFound, "delete deleted membership")
	if got, _ := s.ListMemberships(ctx, "u1"); len(got) != 1 || got[0].OrgID != "acme" {
		t.Errorf("after delete ListMemberships(u1) = %v, want only acme", got)
	}

	// CountAdmins counts enabled admins of that organisation only.
	must(t, s.CreateUser(ctx, store.User{ID: "u4", Email: "di@example.org", Name: "Di", CreatedAt: at(0)}), "create user")
	must(t, s.PutMembership(ctx, store.Membership{UserID: "u2", OrgID: "acme", Role: store.RoleAdmin}), "put")
	must(t, s.PutMembership(ctx, store.Membership{UserID: "u3", OrgID: "acme", Role: store.RoleSupervisor}), "put")
	must(t, s.PutMembership(ctx, store.Membership{UserID: "u4", OrgID: "beta", Role: store.RoleAdmin}), "put")
	count := func(org string) int {
		t.Helper()
		n, err := s.CountAdmins(ctx, org)
		must(t, err, "count admins")
		return n
	}
	if n := count("acme"); n != 2 {
		t.Errorf("CountAdmins(acme) = %d, want 2", n)
	}
	must(t, s.SetUserDisabled(ctx, "u2", at(time.Hour)), "disable")
	if n := count("acme"); n != 1 {
		t.Errorf("CountAdmins(acme) with one admin disabled = %d, want 1", n)
	}
	if n := count("beta"); n != 1 {
		t.Errorf("CountAdmins(beta) = %d, want 1", n)
	}
	if n := count("nope"); n != 0 {
		t.Errorf("CountAdmins(nope) = %d, want 0", n)
	}

	// ListUsers by organisation, by email; every user for "".
	for _, tc := range []struct {
		org  string
		want []string
	}{
		{"acme", []string{"u1", "u2", "u3"}},
		{"beta", []string{"u4"}},
		{"", []string{"u1", "u2", "u3", "u4"}},
		{"nope", nil},
	} {
		list, err := s.ListUsers(ctx, tc.org)
		must(t, err, "list users")
		if diff := cmp.Diff(tc.want, userIDs(list), opts); diff != "" {
			t.Errorf("ListUsers(%q) (-want +got):\n%s", tc.org, diff)
		}
	}
}

func testAccessCarers(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	must(t, s.CreatePerson(ctx, store.Person{ID: "p0", OrgID: "acme", Kind: store.PersonResident, Name: "Eve", CreatedAt: at(0)}), "create person")
	must(t, s.LinkCarer(ctx, "u3", "p1"), "link")
	must(t, s.LinkCarer(ctx, "u3", "p0"), "link")
	must(t, s.LinkCarer(ctx, "u3", "p0"), "link again")
	must(t, s.LinkCarer(ctx, "u2", "p9"), "link other carer")
	mustErr(t, s.LinkCarer(ctx, "u3", "nope"), store.ErrNotFound, "link unknown person")
	mustErr(t, s.LinkCarer(ctx, "nope", "p1"), store.ErrNotFound, "link unknown user")
	people := func(u string) []string {
		t.Helper()
		ids, err := s.ListCarerPeople(ctx, u)
		must(t, err, "list carer people")
		return ids
	}
	if diff := cmp.Diff([]string{"p0", "p1"}, people("u3"), opts); diff != "" {
		t.Errorf("ListCarerPeople(u3) (-want +got):\n%s", diff)
	}
	must(t, s.UnlinkCarer(ctx, "u3", "p1"), "unlink")
	mustErr(t, s.UnlinkCarer(ctx, "u3", "p1"), store.ErrNotFound, "unlink again")
	if diff := cmp.Diff([]string{"p0"}, people("u3"), opts); diff != "" {
		t.Errorf("after unlink ListCarerPeople(u3) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string(nil), people("u1"), opts); diff != "" {
		t.Errorf("ListCarerPeople(u1) (-want +got):\n%s", diff)
	}
}

func testAccessTeams(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	must(t, s.CreateTeam(ctx, store.Team{ID: "t1", OrgID: "acme", Name: "Night shift", CreatedAt: at(time.Minute), Members: []string{"ignored"}}), "create team")
	must(t, s.CreateTeam(ctx, store.Team{ID: "t2", OrgID: "acme", Name: "Day shift", CreatedAt: at(time.Minute)}), "create team")
	must(t, s.CreateTeam(ctx, store.Team{ID: "t9", OrgID: "beta", Name: "Night shift", CreatedAt: at(time.Minute)}), "same name in another org")
	for _, tc := range []struct {
		name string
		team store.Team
		want error
	}{
		{"duplicate id", store.Team{ID: "t1", OrgID: "acme", Name: "Other"}, store.ErrConflict},
		{"duplicate name in org", store.Team{ID: "t3", OrgID: "acme", Name: "Night shift"}, store.ErrConflict},
		{"unknown org", store.Team{ID: "t4", OrgID: "nope", Name: "x"}, store.ErrNotFound},
	} {
		if err := s.CreateTeam(ctx, tc.team); !errors.Is(err, tc.want) {
			t.Errorf("CreateTeam %s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, u := range []string{"u3", "u1", "u2"} {
		must(t, s.AddTeamMember(ctx, "t1", u), "add member")
	}
	must(t, s.AddTeamMember(ctx, "t1", "u1"), "add member again")
	must(t, s.AddTeamMember(ctx, "t9", "u2"), "add member")
	mustErr(t, s.AddTeamMember(ctx, "t1", "nope"), store.ErrNotFound, "add unknown user")
	mustErr(t, s.AddTeamMember(ctx, "nope", "u1"), store.ErrNotFound, "add to unknown team")

	got, err := s.GetTeam(ctx, "t1")
	must(t, err, "get team")
	want := store.Team{ID: "t1", OrgID: "acme", Name: "Night shift", CreatedAt: at(time.Minute), Members: []string{"u1", "u2", "u3"}}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("GetTeam (-want +got):\n%s", diff)
	}
	_, err = s.GetTeam(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get unknown team")

	must(t, s.RemoveTeamMember(ctx, "t1", "u2"), "remove member")
	mustErr(t, s.RemoveTeamMember(ctx, "t1", "u2"), store.ErrNotFound, "remove non-member")
	list, err := s.ListTeams(ctx, "acme")
	must(t, err, "list teams")
	wantList := []store.Team{
		{ID: "t2", OrgID: "acme", Name: "Day shift", CreatedAt: at(time.Minute)},
		{ID: "t1", OrgID: "acme", Name: "Night shift", CreatedAt: at(time.Minute), Members: []string{"u1", "u3"}},
	}
	if diff := cmp.Diff(wantList, list, opts); diff != "" {
		t.Errorf("ListTeams(acme) (-want +got):\n%s", diff)
	}

	// Deleting a team takes its members with it.
	must(t, s.DeleteTeam(ctx, "t1"), "delete team")
	mustErr(t, s.DeleteTeam(ctx, "t1"), store.ErrNotFound, "delete deleted team")
	_, err = s.GetTeam(ctx, "t1")
	mustErr(t, err, store.ErrNotFound, "get deleted team")
	must(t, s.CreateTeam(ctx, store.Team{ID: "t1", OrgID: "acme", Name: "Night shift", CreatedAt: at(time.Hour)}), "recreate team")
	if got, err := s.GetTeam(ctx, "t1"); err != nil || len(got.Members) != 0 {
		t.Errorf("recreated team: %+v, %v; want no members", got, err)
	}
	list, err = s.ListTeams(ctx, "beta")
	must(t, err, "list teams")
	if len(list) != 1 || !cmp.Equal(list[0].Members, []string{"u2"}) {
		t.Errorf("ListTeams(beta) = %+v, want t9 with u2", list)
	}
	list, err = s.ListTeams(ctx, "nope")
	must(t, err, "list teams of unknown org")
	if len(list) != 0 {
		t.Errorf("ListTeams(nope) = %v, want none", list)
	}
}

func testAccessContacts(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	cs := []store.Contact{
		{ID: "c1", OrgID: "acme", PersonID: "p1", Name: "Zed", Relation: "son", Phone: "+447700900001", Email: "zed@example.org", Priority: 1, CreatedAt: at(time.Minute)},
		{ID: "c2", OrgID: "acme", PersonID: "p1", Name: "Amy", Relation: "neighbour", Phone: "+447700900002", Priority: 2, CreatedAt: at(time.Minute)},
		{ID: "c3", OrgID: "acme", PersonID: "p1", Name: "Bea", Relation: "daughter", Phone: "+447700900003", Priority: 1, CreatedAt: at(time.Minute)},
		{ID: "c9", OrgID: "beta", PersonID: "p9", Name: "Cat", Priority: 0, CreatedAt: at(time.Minute)},
	}
	for _, c := range cs {
		must(t, s.PutContact(ctx, c), "put contact")
	}
	got, err := s.GetContact(ctx, "c1")
	must(t, err, "get contact")
	if diff := cmp.Diff(cs[0], got, opts); diff != "" {
		t.Errorf("GetContact (-want +got):\n%s", diff)
	}
	list, err := s.ListContacts(ctx, "p1")
	must(t, err, "list contacts")
	// By priority, then name.
	if diff := cmp.Diff([]store.Contact{cs[2], cs[0], cs[1]}, list, opts); diff != "" {
		t.Errorf("ListContacts(p1) (-want +got):\n%s", diff)
	}

	// Putting an existing id replaces it, keeping when it was created.
	repl := cs[1]
	repl.Name, repl.Phone, repl.Priority, repl.CreatedAt = "Amy Jones", "+447700900099", 0, at(time.Hour)
	must(t, s.PutContact(ctx, repl), "replace contact")
	repl.CreatedAt = cs[1].CreatedAt
	got, err = s.GetContact(ctx, "c2")
	must(t, err, "get contact")
	if diff := cmp.Diff(repl, got, opts); diff != "" {
		t.Errorf("replaced contact (-want +got):\n%s", diff)
	}
	list, err = s.ListContacts(ctx, "p1")
	must(t, err, "list contacts")
	if diff := cmp.Diff([]store.Contact{repl, cs[2], cs[0]}, list, opts); diff != "" {
		t.Errorf("ListContacts(p1) after replace (-want +got):\n%s", diff)
	}

	mustErr(t, s.PutContact(ctx, store.Contact{ID: "cx", OrgID: "acme", PersonID: "nope", Name: "x"}), store.ErrNotFound, "contact of unknown person")
	mustErr(t, s.PutContact(ctx, store.Contact{ID: "cy", OrgID: "acme", PersonID: "p9", Name: "x"}), store.ErrNotFound, "contact of a person of another org")
	_, err = s.GetContact(ctx, "cy")
	mustErr(t, err, store.ErrNotFound, "get refused contact")

	must(t, s.DeleteContact(ctx, "c1"), "delete contact")
	mustErr(t, s.DeleteContact(ctx, "c1"), store.ErrNotFound, "delete deleted contact")
	_, err = s.GetContact(ctx, "c1")
	mustErr(t, err, store.ErrNotFound, "get deleted contact")
	list, err = s.ListContacts(ctx, "nope")
	must(t, err, "list contacts of unknown person")
	if len(list) != 0 {
		t.Errorf("ListContacts(nope) = %v, want none", list)
	}
}

func testAccessNotesAndOrgWebAuthn(t *testing.T, s store.Store) {
	ctx := context.Background()
	seed(t, s)
	notes := func(id string) string {
		t.Helper()
		n, err := s.GetPersonNotes(ctx, id)
		must(t, err, "get person notes")
		return n
	}
	if got := notes("p1"); got != "" {
		t.Errorf("notes of a new person = %q, want empty", got)
	}
	must(t, s.SetPersonNotes(ctx, "p1", "Type 1 diabetic.\nKey safe: side door."), "set notes")
	if got := notes("p1"); got != "Type 1 diabetic.\nKey safe: side door." {
		t.Errorf("notes = %q", got)
	}
	if got := notes("p9"); got != "" {
		t.Errorf("notes of another person = %q, want empty", got)
	}
	_, err := s.GetPersonNotes(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get notes of unknown person")
	mustErr(t, s.SetPersonNotes(ctx, "nope", "x"), store.ErrNotFound, "set notes of unknown person")

	org := func(id string) store.Org {
		t.Helper()
		o, err := s.GetOrg(ctx, id)
		must(t, err, "get org")
		return o
	}
	if org("acme").RequireWebAuthn {
		t.Error("new org requires WebAuthn")
	}
	must(t, s.SetOrgRequireWebAuthn(ctx, "acme", true), "require webauthn")
	if !org("acme").RequireWebAuthn || org("beta").RequireWebAuthn {
		t.Errorf("after SetOrgRequireWebAuthn(acme, true): acme %v, beta %v; want true, false", org("acme").RequireWebAuthn, org("beta").RequireWebAuthn)
	}
	list, err := s.ListOrgs(ctx)
	must(t, err, "list orgs")
	for _, o := range list {
		if o.RequireWebAuthn != (o.ID == "acme") {
			t.Errorf("ListOrgs: %s RequireWebAuthn = %v", o.ID, o.RequireWebAuthn)
		}
	}
	must(t, s.SetOrgRequireWebAuthn(ctx, "acme", false), "stop requiring webauthn")
	if org("acme").RequireWebAuthn {
		t.Error("after SetOrgRequireWebAuthn(acme, false) still required")
	}
	mustErr(t, s.SetOrgRequireWebAuthn(ctx, "nope", true), store.ErrNotFound, "require webauthn of unknown org")
}

func hashOf(s string) []byte {
	b := bytes.Repeat([]byte(s), 32/len(s)+1)
	return b[:32]
}

func testAccessWebSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	ws := store.WebSession{IDHash: hashOf("a"), UserID: "u1", CreatedAt: at(0), LastSeenAt: at(time.Second),
		ExpiresAt: at(12 * time.Hour), SourceIP: "192.0.2.1"}
	must(t, s.CreateWebSession(ctx, ws), "create web session")
	get := func(h []byte) store.WebSession {
		t.Helper()
		got, err := s.GetWebSession(ctx, h)
		must(t, err, "get web session")
		return got
	}
	if diff := cmp.Diff(ws, get(ws.IDHash), opts); diff != "" {
		t.Errorf("GetWebSession (-want +got):\n%s", diff)
	}
	mustErr(t, s.CreateWebSession(ctx, ws), store.ErrConflict, "create duplicate web session")
	mustErr(t, s.CreateWebSession(ctx, store.WebSession{IDHash: hashOf("x"), UserID: "nope", CreatedAt: at(0), ExpiresAt: at(time.Hour)}),
		store.ErrNotFound, "web session of unknown user")
	_, err := s.GetWebSession(ctx, hashOf("nope"))
	mustErr(t, err, store.ErrNotFound, "get unknown web session")

	// Touch moves last seen forward only; MFA is recorded.
	must(t, s.TouchWebSession(ctx, ws.IDHash, at(time.Minute)), "touch")
	must(t, s.TouchWebSession(ctx, ws.IDHash, at(30*time.Second)), "touch with an older time")
	must(t, s.SetWebSessionMFA(ctx, ws.IDHash, at(2*time.Second), "totp"), "set mfa")
	want := ws
	want.LastSeenAt, want.MFAAt, want.MFAMethod = at(time.Minute), at(2*time.Second), "totp"
	if diff := cmp.Diff(want, get(ws.IDHash), opts); diff != "" {
		t.Errorf("after touch and MFA (-want +got):\n%s", diff)
	}
	mustErr(t, s.TouchWebSession(ctx, hashOf("nope"), at(0)), store.ErrNotFound, "touch unknown web session")
	mustErr(t, s.SetWebSessionMFA(ctx, hashOf("nope"), at(0), "totp"), store.ErrNotFound, "set mfa of unknown web session")

	must(t, s.DeleteWebSession(ctx, ws.IDHash), "delete web session")
	mustErr(t, s.DeleteWebSession(ctx, ws.IDHash), store.ErrNotFound, "delete deleted web session")
	_, err = s.GetWebSession(ctx, ws.IDHash)
	mustErr(t, err, store.ErrNotFound, "get deleted web session")

	// DeleteUserWebSessions ends all of a user's sessions but one.
	for _, sess := range []struct {
		id, user string
	}{{"b", "u1"}, {"c", "u1"}, {"d", "u1"}, {"e", "u2"}} {
		must(t, s.CreateWebSession(ctx, store.WebSession{IDHash: hashOf(sess.id), UserID: sess.user, CreatedAt: at(0),
			LastSeenAt: at(0), ExpiresAt: at(12 * time.Hour)}), "create web session")
	}
	n, err := s.DeleteUserWebSessions(ctx, "u1", hashOf("c"))
	must(t, err, "delete user web sessions")
	if n != 2 {
		t.Errorf("DeleteUserWebSessions(u1, keep c) = %d, want 2", n)
	}
	for id, alive := range map[string]bool{"b": false, "c": true, "d": false, "e": true} {
		if _, err := s.GetWebSession(ctx, hashOf(id)); (err == nil) != alive {
			t.Errorf("session %s: GetWebSession error %v, want alive %v", id, err, alive)
		}
	}
	n, err = s.DeleteUserWebSessions(ctx, "u1", nil)
	must(t, err, "delete all user web sessions")
	if n != 1 {
		t.Errorf("DeleteUserWebSessions(u1, nil) = %d, want 1", n)
	}
	n, err = s.DeleteUserWebSessions(ctx, "u3", nil)
	must(t, err, "delete web sessions of a user without any")
	if n != 0 {
		t.Errorf("DeleteUserWebSessions(u3, nil) = %d, want 0", n)
	}
	if _, err := s.GetWebSession(ctx, hashOf("e")); err != nil {
		t.Errorf("other user's session ended: %v", err)
	}
}

func testAccessExpiredWebSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	for _, sess := range []struct {
		id            string
		seen, expires time.Duration
	}{
		{"fresh", 50 * time.Minute, 12 * time.Hour},
		{"expired", 59 * time.Minute, 30 * time.Minute},
		{"idle", 10 * time.Minute, 12 * time.Hour},
		{"edge", 30 * time.Minute, time.Hour}, // expires at exactly now, seen at exactly idleBefore: kept
	} {
		must(t, s.CreateWebSession(ctx, store.WebSession{IDHash: hashOf(sess.id), UserID: "u1", CreatedAt: at(0),
			LastSeenAt: at(sess.seen), ExpiresAt: at(sess.expires)}), "create web session")
	}
	n, err := s.DeleteExpiredWebSessions(ctx, at(time.Hour), at(30*time.Minute))
	must(t, err, "delete expired web sessions")
	if n != 2 {
		t.Errorf("DeleteExpiredWebSessions = %d, want 2", n)
	}
	for id, alive := range map[string]bool{"fresh": true, "expired": false, "idle": false, "edge": true} {
		if _, err := s.GetWebSession(ctx, hashOf(id)); (err == nil) != alive {
			t.Errorf("session %s: GetWebSession error %v, want alive %v", id, err, alive)
		}
	}
	n, err = s.DeleteExpiredWebSessions(ctx, at(time.Hour), at(30*time.Minute))
	must(t, err, "delete expired web sessions again")
	if n != 0 {
		t.Errorf("second DeleteExpiredWebSessions = %d, want 0", n)
	}
}

func testAccessRecoveryCodes(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	countCodes := func(u string) int {
		t.Helper()
		n, err := s.CountRecoveryCodes(ctx, u)
		must(t, err, "count recovery codes")
		return n
	}
	codes := [][]byte{hashOf("r1"), hashOf("r2"), hashOf("r3")}
	must(t, s.ReplaceRecoveryCodes(ctx, "u1", codes), "replace recovery codes")
	must(t, s.ReplaceRecoveryCodes(ctx, "u2", [][]byte{hashOf("r1")}), "same hash for another user")
	if n := countCodes("u1"); n != 3 {
		t.Errorf("CountRecoveryCodes = %d, want 3", n)
	}
	must(t, s.UseRecoveryCode(ctx, "u1", hashOf("r2"), at(time.Minute)), "use recovery code")
	mustErr(t, s.UseRecoveryCode(ctx, "u1", hashOf("r2"), at(2*time.Minute)), store.ErrNotFound, "use recovery code twice")
	mustErr(t, s.UseRecoveryCode(ctx, "u1", hashOf("zz"), at(time.Minute)), store.ErrNotFound, "use unknown recovery code")
	mustErr(t, s.UseRecoveryCode(ctx, "u3", hashOf("r1"), at(time.Minute)), store.ErrNotFound, "use another user's recovery code")
	if n := countCodes("u1"); n != 2 {
		t.Errorf("CountRecoveryCodes after one use = %d, want 2", n)
	}
	if n := countCodes("u2"); n != 1 {
		t.Errorf("CountRecoveryCodes(u2) = %d, want 1", n)
	}
	// New codes replace every old one, used or not.
	must(t, s.ReplaceRecoveryCodes(ctx, "u1", [][]byte{hashOf("r2"), hashOf("r4")}), "replace again")
	if n := countCodes("u1"); n != 2 {
		t.Errorf("CountRecoveryCodes after replace = %d, want 2", n)
	}
	mustErr(t, s.UseRecoveryCode(ctx, "u1", hashOf("r1"), at(time.Hour)), store.ErrNotFound, "use a replaced code")
	must(t, s.UseRecoveryCode(ctx, "u1", hashOf("r2"), at(time.Hour)), "use a reissued hash")
	must(t, s.ReplaceRecoveryCodes(ctx, "u1", nil), "remove all codes")
	if n := countCodes("u1"); n != 0 {
		t.Errorf("CountRecoveryCodes after removing all = %d, want 0", n)
	}
	mustErr(t, s.ReplaceRecoveryCodes(ctx, "nope", codes), store.ErrNotFound, "recovery codes of unknown user")
	if n := countCodes("nope"); n != 0 {
		t.Errorf("CountRecoveryCodes(nope) = %d, want 0", n)
	}
}

func testAccessWebAuthn(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	c1 := store.WebAuthnCredential{ID: []byte{1, 2, 3}, UserID: "u1", Name: "YubiKey", Data: `{"signCount":1}`, CreatedAt: at(time.Minute)}
	c2 := store.WebAuthnCredential{ID: []byte{9, 9}, UserID: "u1", Name: "Phone", Data: `{"signCount":0}`, CreatedAt: at(2 * time.Minute)}
	must(t, s.PutWebAuthnCredential(ctx, c2), "put credential")
	must(t, s.PutWebAuthnCredential(ctx, c1), "put credential")
	list, err := s.ListWebAuthnCredentials(ctx, "u1")
	must(t, err, "list credentials")
	if diff := cmp.Diff([]store.WebAuthnCredential{c1, c2}, list, opts); diff != "" {
		t.Errorf("ListWebAuthnCredentials (-want +got):\n%s", diff)
	}
	// A put of a known id replaces it (a new sign count, a use), keeping
	// its creation time.
	upd := c1
	upd.Data, upd.LastUsedAt, upd.CreatedAt = `{"signCount":2}`, at(time.Hour), at(time.Hour)
	must(t, s.PutWebAuthnCredential(ctx, upd), "replace credential")
	upd.CreatedAt = c1.CreatedAt
	list, err = s.ListWebAuthnCredentials(ctx, "u1")
	must(t, err, "list credentials")
	if diff := cmp.Diff([]store.WebAuthnCredential{upd, c2}, list, opts); diff != "" {
		t.Errorf("after replace (-want +got):\n%s", diff)
	}
	// Another user cannot take over a credential id.
	steal := c1
	steal.UserID = "u2"
	mustErr(t, s.PutWebAuthnCredential(ctx, steal), store.ErrConflict, "put another user's credential id")
	mustErr(t, s.PutWebAuthnCredential(ctx, store.WebAuthnCredential{ID: []byte{7}, UserID: "nope", Data: "{}"}), store.ErrNotFound, "credential of unknown user")
	mustErr(t, s.DeleteWebAuthnCredential(ctx, "u2", c1.ID), store.ErrNotFound, "delete another user's credential")
	must(t, s.DeleteWebAuthnCredential(ctx, "u1", c1.ID), "delete credential")
	mustErr(t, s.DeleteWebAuthnCredential(ctx, "u1", c1.ID), store.ErrNotFound, "delete deleted credential")
	list, err = s.ListWebAuthnCredentials(ctx, "u1")
	must(t, err, "list credentials")
	if diff := cmp.Diff([]store.WebAuthnCredential{c2}, list, opts); diff != "" {
		t.Errorf("after delete (-want +got):\n%s", diff)
	}
	list, err = s.ListWebAuthnCredentials(ctx, "u2")
	must(t, err, "list credentials of a user without any")
	if len(list) != 0 {
		t.Errorf("ListWebAuthnCredentials(u2) = %v, want none", list)
	}
}

func testAccessAPITokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	tok := store.APIToken{ID: "vgt_a1", OrgID: "acme", Name: "CAD integration", SecretHash: hashOf("s1"),
		Permissions: []string{"alerts:read", "alerts:ack", "devices:read"}, CreatedBy: "u1",
		CreatedAt: at(time.Minute), ExpiresAt: at(90 * 24 * time.Hour)}
	must(t, s.CreateAPIToken(ctx, tok), "create api token")
	must(t, s.CreateAPIToken(ctx, store.APIToken{ID: "vgt_a2", OrgID: "acme", Name: "newer", SecretHash: hashOf("s2"),
		CreatedBy: "u1", CreatedAt: at(time.Hour), ExpiresAt: at(48 * time.Hour)}), "create api token without permissions")
	must(t, s.CreateAPIToken(ctx, store.APIToken{ID: "vgt_b1", OrgID: "beta", Name: "other org", SecretHash: hashOf("s3"),
		Permissions: []string{"alerts:read"}, CreatedBy: "u2", CreatedAt: at(2 * time.Hour), ExpiresAt: at(48 * time.Hour)}), "create api token")
	get := func(id string) store.APIToken {
		t.Helper()
		got, err := s.GetAPIToken(ctx, id)
		must(t, err, "get api token")
		return got
	}
	if diff := cmp.Diff(tok, get("vgt_a1"), opts); diff != "" {
		t.Errorf("GetAPIToken (-want +got):\n%s", diff)
	}
	if got := get("vgt_a2").Permissions; len(got) != 0 {
		t.Errorf("permissions of a token without any = %q, want none", got)
	}
	mustErr(t, s.CreateAPIToken(ctx, tok), store.ErrConflict, "create duplicate api token")
	unknownOrg := tok
	unknownOrg.ID, unknownOrg.OrgID = "vgt_x", "nope"
	mustErr(t, s.CreateAPIToken(ctx, unknownOrg), store.ErrNotFound, "api token of unknown org")
	_, err := s.GetAPIToken(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get unknown api token")

	list, err := s.ListAPITokens(ctx, "acme")
	must(t, err, "list api tokens")
	var ids []string
	for _, tk := range list {
		ids = append(ids, tk.ID)
	}
	if diff := cmp.Diff([]string{"vgt_a2", "vgt_a1"}, ids); diff != "" {
		t.Errorf("ListAPITokens(acme), newest first (-want +got):\n%s", diff)
	}

	must(t, s.TouchAPIToken(ctx, "vgt_a1", at(3*time.Hour)), "touch api token")
	must(t, s.TouchAPIToken(ctx, "vgt_a1", at(2*time.Hour)), "touch api token with an older time")
	must(t, s.RevokeAPIToken(ctx, "vgt_a1", at(4*time.Hour)), "revoke api token")
	must(t, s.RevokeAPIToken(ctx, "vgt_a1", at(5*time.Hour)), "revoke api token again")
	want := tok
	want.LastUsedAt, want.RevokedAt = at(3*time.Hour), at(4*time.Hour)
	if diff := cmp.Diff(want, get("vgt_a1"), opts); diff != "" {
		t.Errorf("after touch and revoke (-want +got):\n%s", diff)
	}
	if got := get("vgt_a2"); !got.RevokedAt.IsZero() || !got.LastUsedAt.IsZero() {
		t.Errorf("other token changed: %+v", got)
	}
	mustErr(t, s.RevokeAPIToken(ctx, "nope", at(0)), store.ErrNotFound, "revoke unknown api token")
	mustErr(t, s.TouchAPIToken(ctx, "nope", at(0)), store.ErrNotFound, "touch unknown api token")
}

func testAccessResetTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	seedUsers(t, s)
	rt := store.ResetToken{TokenHash: hashOf("t1"), UserID: "u1", CreatedAt: at(0), ExpiresAt: at(time.Hour)}
	must(t, s.CreateResetToken(ctx, rt), "create reset token")
	must(t, s.CreateResetToken(ctx, store.ResetToken{TokenHash: hashOf("t2"), UserID: "u2", CreatedAt: at(0), ExpiresAt: at(time.Hour)}), "create reset token")
	mustErr(t, s.CreateResetToken(ctx, rt), store.ErrConflict, "create duplicate reset token")
	mustErr(t, s.CreateResetToken(ctx, store.ResetToken{TokenHash: hashOf("t3"), UserID: "nope", CreatedAt: at(0), ExpiresAt: at(time.Hour)}),
		store.ErrNotFound, "reset token of unknown user")

	got, err := s.UseResetToken(ctx, hashOf("t1"), at(30*time.Minute))
	must(t, err, "use reset token")
	want := rt
	want.UsedAt = at(30 * time.Minute)
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("UseResetToken (-want +got):\n%s", diff)
	}
	_, err = s.UseResetToken(ctx, hashOf("t1"), at(31*time.Minute))
	mustErr(t, err, store.ErrNotFound, "use reset token twice")
	_, err = s.UseResetToken(ctx, hashOf("t2"), at(time.Hour))
	mustErr(t, err, store.ErrNotFound, "use reset token at its expiry")
	_, err = s.UseResetToken(ctx, hashOf("nope"), at(0))
	mustErr(t, err, store.ErrNotFound, "use unknown reset token")
	got, err = s.UseResetToken(ctx, hashOf("t2"), at(time.Hour-time.Microsecond))
	must(t, err, "use reset token just before its expiry")
	if got.UserID != "u2" {
		t.Errorf("UseResetToken(t2).UserID = %s, want u2", got.UserID)
	}

	// Of concurrent uses of one token, exactly one succeeds.
	must(t, s.CreateResetToken(ctx, store.ResetToken{TokenHash: hashOf("t4"), UserID: "u3", CreatedAt: at(0), ExpiresAt: at(time.Hour)}), "create reset token")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.UseResetToken(ctx, hashOf("t4"), at(time.Minute))
		}()
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("concurrent UseResetToken %d: %v, want nil or ErrNotFound", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent UseResetToken succeeded, want exactly 1", ok, n)
	}
}
