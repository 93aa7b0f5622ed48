package encrypted_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"vigil/internal/store"
	"vigil/internal/store/encrypted"
)

// BenchmarkStore compares the same SQLite store with and without the
// decorator: a person's details (person, notes, contacts) read as the
// console's person page does, listing an organisation of 1000 people,
// and creating a person.
func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"plain", "encrypted"} {
		inner := openSQLite(b, filepath.Join(b.TempDir(), "vigil.db"))
		b.Cleanup(func() { _ = inner.Close() })
		var s store.Store = inner
		if mode == "encrypted" {
			s = encrypted.Wrap(inner, newKeyring(b, inner))
		}
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := s.CreateOrg(ctx, store.Org{ID: "acme", Name: "Acme", CreatedAt: t0}); err != nil {
			b.Fatal(err)
		}
		for i := range 1000 {
			id := fmt.Sprintf("p%04d", i)
			if err := s.CreatePerson(ctx, store.Person{ID: id, OrgID: "acme", Kind: store.PersonResident, Name: "Resident Number " + id, CreatedAt: t0}); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.SetPersonNotes(ctx, "p0001", "Type 1 diabetic; insulin in the fridge"); err != nil {
			b.Fatal(err)
		}
		for i := range 3 {
			if err := s.PutContact(ctx, store.Contact{ID: fmt.Sprintf("c%d", i), OrgID: "acme", PersonID: "p0001", Name: "Kin", Relation: "daughter",
				Phone: "+447700900123", Email: "kin@example.org", Priority: i, CreatedAt: t0}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("PersonPage/"+mode, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.GetPerson(ctx, "p0001"); err != nil {
					b.Fatal(err)
				}
				if _, err := s.GetPersonNotes(ctx, "p0001"); err != nil {
					b.Fatal(err)
				}
				if _, err := s.ListContacts(ctx, "p0001"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("ListPeople1000/"+mode, func(b *testing.B) {
			for b.Loop() {
				ps, err := s.ListPeople(ctx, "acme")
				if err != nil || len(ps) != 1000 {
					b.Fatal(len(ps), err)
				}
			}
		})
		n := 0
		b.Run("CreatePerson/"+mode, func(b *testing.B) {
			for b.Loop() {
				n++
				if err := s.CreatePerson(ctx, store.Person{ID: fmt.Sprintf("n%d", n), OrgID: "acme", Kind: store.PersonWorker, Name: "New Person", CreatedAt: t0}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
