package encrypted

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"vigil/internal/datakey"
	"vigil/internal/store"
)

// Receipt is an erasure receipt (store.ErasureReceipt).
type Receipt = store.ErasureReceipt

// Kept is a class of records kept after an erasure (store.ErasureKept).
type Kept = store.ErasureKept

// ErrErasureBlocked: the person has an open alert or an active session.
var ErrErasureBlocked = errors.New("encrypted: the person has an open alert or an active session; close them first")

// ErasePersonData erases a person for reason (the legal basis, kept in
// the receipt): their rows where no legal duty applies
// are deleted (store.PrivacyStore.ErasePerson), their data key is
// destroyed (what is kept reads as Erased), and the erasure is recorded in
// the ledger. Erasing someone already erased returns the first receipt
// and false. An unknown person is store.ErrNotFound; one with an open
// alert or active session ErrErasureBlocked (wrapping store.ErrConflict).
func (s *Store) ErasePersonData(ctx context.Context, personID, reason string, at time.Time) (Receipt, bool, error) {
	if prev, err := s.Store.GetErasure(ctx, personID); err == nil {
		r, err := parseReceipt(prev)
		return r, false, err
	} else if !errors.Is(err, store.ErrNotFound) {
		return Receipt{}, false, fmt.Errorf("erase person %s: %w", personID, err)
	}
	owner := datakey.PersonOwner(personID)
	p, err := s.Store.GetPerson(ctx, personID)
	if errors.Is(err, store.ErrNotFound) {
		// A crash after the rows were deleted but before the ledger was
		// written leaves a destroyed key and no person: finish the job.
		gone, derr := s.keys.Destroyed(ctx, owner)
		if derr != nil || !gone {
			return Receipt{}, false, err
		}
		r := newReceipt(personID, "", reason, at, store.ErasedRows{}, true)
		return r, true, s.record(ctx, r)
	}
	if err != nil {
		return Receipt{}, false, fmt.Errorf("erase person %s: %w", personID, err)
	}
	rows, err := s.erase(ctx, p)
	if err != nil {
		return Receipt{}, false, err
	}
	destroyed, err := s.keys.Destroyed(ctx, owner)
	if err != nil {
		return Receipt{}, false, fmt.Errorf("erase person %s: %w", personID, err)
	}
	r := newReceipt(personID, p.OrgID, reason, at, rows, destroyed)
	if err := s.record(ctx, r); err != nil {
		return Receipt{}, false, err
	}
	return r, true, nil
}

// ErasePerson destroys the person's data key, then deletes their rows
// (store.PrivacyStore.ErasePerson): what is kept reads as Erased. It
// refuses (ErrErasureBlocked, wrapping store.ErrConflict) before
// destroying anything while the person has an open alert or an active
// session. ErasePersonData also records the erasure; prefer it.
func (s *Store) ErasePerson(ctx context.Context, personID string) (store.ErasedRows, error) {
	p, err := s.Store.GetPerson(ctx, personID)
	if err != nil {
		return store.ErasedRows{}, fmt.Errorf("erase person %s: %w", personID, err)
	}
	return s.erase(ctx, p)
}

func (s *Store) erase(ctx context.Context, p store.Person) (store.ErasedRows, error) {
	personID := p.ID
	// Refuse before destroying anything: the store checks again inside
	// its transaction.
	open, err := s.Store.ListAlerts(ctx, store.AlertFilter{PersonID: personID, States: []store.AlertState{store.AlertPending, store.AlertRaised, store.AlertAcknowledged}, Limit: 1})
	if err != nil {
		return store.ErasedRows{}, fmt.Errorf("erase person %s: %w", personID, err)
	}
	active, err := s.Store.ListSessions(ctx, store.SessionFilter{OrgID: p.OrgID, PersonID: personID, ActiveOnly: true, Limit: 1})
	if err != nil {
		return store.ErasedRows{}, fmt.Errorf("erase person %s: %w", personID, err)
	}
	if len(open) > 0 || len(active) > 0 {
		return store.ErasedRows{}, fmt.Errorf("erase person %s: %w: %w", personID, ErrErasureBlocked, store.ErrConflict)
	}
	// The key first: a crash after it leaves the data unreadable, and a
	// retry deletes the rows.
	if _, err := s.keys.Destroy(ctx, datakey.PersonOwner(personID)); err != nil {
		return store.ErasedRows{}, fmt.Errorf("erase person %s: %w", personID, err)
	}
	rows, err := s.Store.ErasePerson(ctx, personID)
	if errors.Is(err, store.ErrConflict) {
		return store.ErasedRows{}, fmt.Errorf("erase person %s: %w: %w", personID, ErrErasureBlocked, err)
	}
	if err != nil {
		return store.ErasedRows{}, fmt.Errorf("erase person %s: %w", personID, err)
	}
	return rows, nil
}

func (s *Store) record(ctx context.Context, r Receipt) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("erase person %s: receipt: %w", r.PersonID, err)
	}
	e := store.Erasure{PersonID: r.PersonID, OrgID: r.OrgID, ErasedAt: r.ErasedAt, ReceiptID: r.ID, Receipt: string(body)}
	if err := s.Store.PutErasure(ctx, e); err != nil {
		return fmt.Errorf("erase person %s: record: %w", r.PersonID, err)
	}
	if s.ledger != nil {
		if err := s.ledger.append(e); err != nil {
			return fmt.Errorf("erase person %s: %w", r.PersonID, err)
		}
	}
	return nil
}

func parseReceipt(e store.Erasure) (Receipt, error) {
	var r Receipt
	if err := json.Unmarshal([]byte(e.Receipt), &r); err != nil {
		return Receipt{}, fmt.Errorf("erasure receipt of %s: %w", e.PersonID, err)
	}
	return r, nil
}

// Erasure returns a person's erasure receipt, or store.ErrNotFound.
func (s *Store) Erasure(ctx context.Context, personID string) (Receipt, error) {
	e, err := s.Store.GetErasure(ctx, personID)
	if err != nil {
		return Receipt{}, err
	}
	return parseReceipt(e)
}

func newReceipt(personID, orgID, reason string, at time.Time, n store.ErasedRows, destroyed bool) Receipt {
	var id [12]byte
	_, _ = rand.Read(id[:])
	erased := map[string]int{}
	for k, v := range map[string]int{
		"person": n.Person, "medical_notes": n.MedicalNotes, "contacts": n.Contacts, "carer_links": n.CarerLinks,
		"photo": n.Photos, "sessions": n.Sessions, "positions": n.Positions, "events": n.Events,
		"break_glass_grants": n.BreakGlass, "alert_locations": n.AlertPositions, "delivery_addresses": n.DeliveriesMasked,
		"alert_text_stored_unencrypted": n.PlaintextCleared,
	} {
		if v > 0 {
			erased[k] = v
		}
	}
	kept := []Kept{
		{Class: "closed_alerts", Count: n.AlertsKept, Why: "incident records kept under a legal duty (Records Management Code of Practice for Health and Social Care; limitation periods for claims): their notes, details, outcome notes and timeline text are crypto-shredded and read as [erased]; their location snapshot and notification addresses were removed"},
		{Class: "devices", Count: n.DevicesUnlinked, Why: "the organisation's equipment: unassigned from the person, last known position cleared"},
		{Class: "user_accounts", Count: n.UsersUnlinked, Why: "sign-in accounts are staff or app accounts managed separately (disable or remove them in Users); their link to the person was removed"},
		{Class: "audit_log", Count: 0, Why: "accountability records required by the security policy: they name the person by id only, and the hash chain must stay verifiable"},
		{Class: "erasure_ledger", Count: 1, Why: "this person's id and the erasure time, so that a restore from an earlier backup erases them again"},
		{Class: "backups", Count: 0, Why: "backups taken earlier still hold this person's data encrypted under the destroyed data key: unreadable, as the key-encryption key is kept outside the data directory and its backups"},
	}
	return Receipt{ID: "er_" + hex.EncodeToString(id[:]), PersonID: personID, OrgID: orgID, ErasedAt: at.UTC(), Reason: reason, Erased: erased, Kept: kept, DataKeyDestroyed: destroyed}
}

// ApplyErasures re-applies an erasure ledger to st, e.g. after restoring
// a backup taken before some of the erasures: for each person in ledger,
// their data key is destroyed and their rows erased, and the ledger entry
// is recorded again. It skips people already erased in st and returns how
// many it erased. Call it with the ledger of the database being replaced
// (read before the restore, ListErasures) and with the restored store;
// erasures blocked by an alert that was open when the backup was taken
// are still shredded (key destroyed) and reported in the error.
func ApplyErasures(ctx context.Context, st *Store, ledger []store.Erasure) (int, error) {
	n := 0
	var blocked []error
	for _, e := range ledger {
		if _, err := st.Store.GetErasure(ctx, e.PersonID); err == nil {
			continue
		}
		if _, err := st.keys.Destroy(ctx, datakey.PersonOwner(e.PersonID)); err != nil {
			return n, fmt.Errorf("apply erasure of %s: %w", e.PersonID, err)
		}
		_, err := st.Store.ErasePerson(ctx, e.PersonID)
		switch {
		case errors.Is(err, store.ErrConflict):
			blocked = append(blocked, fmt.Errorf("apply erasure of %s: shredded, rows kept: %w", e.PersonID, err))
			continue
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return n, fmt.Errorf("apply erasure of %s: %w", e.PersonID, err)
		}
		if err := st.Store.PutErasure(ctx, e); err != nil && !errors.Is(err, store.ErrConflict) {
			return n, fmt.Errorf("apply erasure of %s: %w", e.PersonID, err)
		}
		n++
	}
	return n, errors.Join(blocked...)
}
