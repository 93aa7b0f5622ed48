// Package encrypted is a store.Store decorator that encrypts personal and
// health data field by field before it reaches SQL, and decrypts it on the
// way back, so both dialects get the same encryption from one
// implementation (issue 9).
//
// Encrypted, each under the data key of the person it is about
// (internal/datakey), bound to its table, column and row: people's names
// and medical notes, emergency contacts (name, relation, phone, e-mail),
// session (amber) notes, alert notes, details and outcome notes, alert
// timeline details (responders' notes), break-glass reasons and person
// photos; delivery targets (addresses) under the organisation's key. Text
// about no person (an alert of an unassigned device) uses the
// organisation's key. A sealed text column holds "enc1:" and the base64 of
// the sealed value; an empty value stays empty.
//
// Reading a value whose key was destroyed (the person was erased) gives
// Erased ("[erased]"); any other failure to open (a flipped byte, a value
// moved to another row) is an error wrapping datakey.ErrIntegrity: never
// wrong data. Text written before encryption was turned on (no "enc1:"
// prefix) is read as it is; `vigil keys encrypt-existing` rewrites it.
//
// Not encrypted: ids, kinds, times, states (the engines select on them),
// users' names and e-mail addresses (sign-in looks them up), device names,
// and positions (see docs/privacy.md for the measured cost).
//
// Sorting by an encrypted column (contacts by name) happens here, after
// decrypting, within one person's rows; no SQL orders or filters by one.
//
// Must not import: the SQL drivers, HTTP, the bus; only store, datakey
// and the standard library. Safe for concurrent use; no goroutines.
package encrypted

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"vigil/internal/datakey"
	"vigil/internal/store"
)

// Erased is what a field reads as once its person was erased.
const Erased = "[erased]"

const textPrefix = store.SealedPrefix

// Store wraps a store.Store; every method it does not override is the
// inner store's.
type Store struct {
	store.Store
	keys   *datakey.Keyring
	ledger *fileLedger // the erasure ledger beside the key file; nil: none
}

// Wrap returns inner with personal fields encrypted under keys.
func Wrap(inner store.Store, keys *datakey.Keyring) *Store {
	return &Store{Store: inner, keys: keys}
}

// Keys is the keyring the store encrypts with.
func (s *Store) Keys() *datakey.Keyring { return s.keys }

// Inner is the wrapped store (raw ciphertext: tests and key tools only).
func (s *Store) Inner() store.Store { return s.Store }

func personOwner(personID, orgID string) string {
	if personID == "" {
		return datakey.OrgOwner(orgID)
	}
	return datakey.PersonOwner(personID)
}

// sealText seals v for owner in table.column of row; "" stays "".
func (s *Store) sealText(ctx context.Context, owner, table, column, row, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	ct, err := s.keys.Seal(ctx, owner, []byte(v), datakey.Field(table, column, row))
	if err != nil {
		return "", fmt.Errorf("encrypt %s.%s of %s: %w", table, column, row, erased(err))
	}
	return textPrefix + base64.RawStdEncoding.EncodeToString(ct), nil
}

// erased adds store.ErrNotFound to a write for an erased person (their
// key is destroyed: they are gone), so callers answer 404, not 500; the
// chain still wraps datakey.ErrDestroyed.
func erased(err error) error {
	if errors.Is(err, datakey.ErrDestroyed) {
		return fmt.Errorf("the person was erased: %w: %w", store.ErrNotFound, err)
	}
	return err
}

// sealAlertText seals alert text: under the person's key, or the
// organisation's when there is no person or the person was erased (an
// alarm is never refused for want of a key).
func (s *Store) sealAlertText(ctx context.Context, personID, orgID, table, column, row, v string) (string, error) {
	out, err := s.sealText(ctx, personOwner(personID, orgID), table, column, row, v)
	if errors.Is(err, datakey.ErrDestroyed) && personID != "" {
		return s.sealText(ctx, datakey.OrgOwner(orgID), table, column, row, v)
	}
	return out, err
}

// openText opens a value sealText made.
func (s *Store) openText(ctx context.Context, table, column, row, v string) (string, error) {
	if !strings.HasPrefix(v, textPrefix) {
		return v, nil // "" or text stored before encryption was on
	}
	ct, err := base64.RawStdEncoding.Strict().DecodeString(v[len(textPrefix):])
	if err != nil {
		return "", fmt.Errorf("decrypt %s.%s of %s: not base64: %w", table, column, row, datakey.ErrIntegrity)
	}
	pt, err := s.keys.Open(ctx, ct, datakey.Field(table, column, row))
	if errors.Is(err, datakey.ErrDestroyed) {
		return Erased, nil
	}
	if err != nil {
		return "", fmt.Errorf("decrypt %s.%s of %s: %w", table, column, row, err)
	}
	return string(pt), nil
}

func (s *Store) sealBytes(ctx context.Context, owner, table, column, row string, v []byte) ([]byte, error) {
	ct, err := s.keys.Seal(ctx, owner, v, datakey.Field(table, column, row))
	if err != nil {
		return nil, fmt.Errorf("encrypt %s.%s of %s: %w", table, column, row, erased(err))
	}
	return append([]byte(textPrefix), ct...), nil
}

// openBytes returns nil, nil for a value whose key was destroyed.
func (s *Store) openBytes(ctx context.Context, table, column, row string, v []byte) ([]byte, error) {
	if !bytes.HasPrefix(v, []byte(textPrefix)) {
		return v, nil
	}
	pt, err := s.keys.Open(ctx, v[len(textPrefix):], datakey.Field(table, column, row))
	if errors.Is(err, datakey.ErrDestroyed) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt %s.%s of %s: %w", table, column, row, err)
	}
	return pt, nil
}

// --- people -----------------------------------------------------------------

// CreatePerson stores a person with their name encrypted.
func (s *Store) CreatePerson(ctx context.Context, p store.Person) error {
	var err error
	if p.Name, err = s.sealText(ctx, datakey.PersonOwner(p.ID), "people", "name", p.ID, p.Name); errors.Is(err, datakey.ErrDestroyed) {
		// The id belonged to someone erased: never reused.
		return fmt.Errorf("create person %s: the id belonged to an erased person: %w", p.ID, store.ErrConflict)
	} else if err != nil {
		return fmt.Errorf("create person %s: %w", p.ID, err)
	}
	return s.Store.CreatePerson(ctx, p)
}

func (s *Store) openPerson(ctx context.Context, p *store.Person) error {
	var err error
	p.Name, err = s.openText(ctx, "people", "name", p.ID, p.Name)
	return err
}

// GetPerson returns a person with their name decrypted.
func (s *Store) GetPerson(ctx context.Context, id string) (store.Person, error) {
	p, err := s.Store.GetPerson(ctx, id)
	if err != nil {
		return p, err
	}
	if err := s.openPerson(ctx, &p); err != nil {
		return store.Person{}, fmt.Errorf("get person %s: %w", id, err)
	}
	return p, nil
}

// ListPeople lists an organisation's people (by id) with names decrypted.
func (s *Store) ListPeople(ctx context.Context, orgID string) ([]store.Person, error) {
	ps, err := s.Store.ListPeople(ctx, orgID)
	if err != nil {
		return nil, err
	}
	for i := range ps {
		if err := s.openPerson(ctx, &ps[i]); err != nil {
			return nil, fmt.Errorf("list people of %s: %w", orgID, err)
		}
	}
	return ps, nil
}

// SetPersonNotes stores a person's medical notes encrypted.
func (s *Store) SetPersonNotes(ctx context.Context, personID, notes string) error {
	ct, err := s.sealText(ctx, datakey.PersonOwner(personID), "people", "medical_notes", personID, notes)
	if err != nil {
		return fmt.Errorf("set notes of %s: %w", personID, err)
	}
	return s.Store.SetPersonNotes(ctx, personID, ct)
}

// GetPersonNotes returns a person's medical notes decrypted.
func (s *Store) GetPersonNotes(ctx context.Context, personID string) (string, error) {
	ct, err := s.Store.GetPersonNotes(ctx, personID)
	if err != nil {
		return "", err
	}
	pt, err := s.openText(ctx, "people", "medical_notes", personID, ct)
	if err != nil {
		return "", fmt.Errorf("get notes of %s: %w", personID, err)
	}
	return pt, nil
}

// PutPersonPhoto stores a person's photo encrypted.
func (s *Store) PutPersonPhoto(ctx context.Context, p store.PersonPhoto) error {
	var err error
	if p.Bytes, err = s.sealBytes(ctx, datakey.PersonOwner(p.PersonID), "person_photos", "bytes", p.PersonID, p.Bytes); err != nil {
		return fmt.Errorf("put photo of %s: %w", p.PersonID, err)
	}
	return s.Store.PutPersonPhoto(ctx, p)
}

// GetPersonPhoto returns a person's photo decrypted; a shredded one is
// ErrNotFound.
func (s *Store) GetPersonPhoto(ctx context.Context, personID string) (store.PersonPhoto, error) {
	p, err := s.Store.GetPersonPhoto(ctx, personID)
	if err != nil {
		return p, err
	}
	b, err := s.openBytes(ctx, "person_photos", "bytes", personID, p.Bytes)
	if err != nil {
		return store.PersonPhoto{}, fmt.Errorf("get photo of %s: %w", personID, err)
	}
	if b == nil {
		return store.PersonPhoto{}, fmt.Errorf("get photo of %s: erased: %w", personID, store.ErrNotFound)
	}
	p.Bytes = b
	return p, nil
}

// --- contacts ---------------------------------------------------------------

// PutContact stores a contact with name, relation, phone and e-mail
// encrypted under their person's key.
func (s *Store) PutContact(ctx context.Context, c store.Contact) error {
	owner := datakey.PersonOwner(c.PersonID)
	for _, f := range []struct {
		col string
		v   *string
	}{{"name", &c.Name}, {"relation", &c.Relation}, {"phone", &c.Phone}, {"email", &c.Email}} {
		ct, err := s.sealText(ctx, owner, "contacts", f.col, c.ID, *f.v)
		if err != nil {
			return fmt.Errorf("put contact %s: %w", c.ID, err)
		}
		*f.v = ct
	}
	return s.Store.PutContact(ctx, c)
}

func (s *Store) openContact(ctx context.Context, c *store.Contact) error {
	for _, f := range []struct {
		col string
		v   *string
	}{{"name", &c.Name}, {"relation", &c.Relation}, {"phone", &c.Phone}, {"email", &c.Email}} {
		pt, err := s.openText(ctx, "contacts", f.col, c.ID, *f.v)
		if err != nil {
			return err
		}
		*f.v = pt
	}
	return nil
}

// GetContact returns a contact decrypted.
func (s *Store) GetContact(ctx context.Context, id string) (store.Contact, error) {
	c, err := s.Store.GetContact(ctx, id)
	if err != nil {
		return c, err
	}
	if err := s.openContact(ctx, &c); err != nil {
		return store.Contact{}, fmt.Errorf("get contact %s: %w", id, err)
	}
	return c, nil
}

// ListContacts lists a person's contacts decrypted, by priority, then
// name, then id (sorted here: SQL sees only ciphertext).
func (s *Store) ListContacts(ctx context.Context, personID string) ([]store.Contact, error) {
	cs, err := s.Store.ListContacts(ctx, personID)
	if err != nil {
		return nil, err
	}
	for i := range cs {
		if err := s.openContact(ctx, &cs[i]); err != nil {
			return nil, fmt.Errorf("list contacts of %s: %w", personID, err)
		}
	}
	slices.SortStableFunc(cs, func(a, b store.Contact) int {
		if a.Priority != b.Priority {
			return a.Priority - b.Priority
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return cs, nil
}

// --- break glass ------------------------------------------------------------

// CreateBreakGlass stores a grant with its reason encrypted.
func (s *Store) CreateBreakGlass(ctx context.Context, g store.BreakGlass) error {
	var err error
	if g.Reason, err = s.sealText(ctx, datakey.PersonOwner(g.PersonID), "break_glass", "reason", g.ID, g.Reason); err != nil {
		return fmt.Errorf("create break-glass grant %s: %w", g.ID, err)
	}
	return s.Store.CreateBreakGlass(ctx, g)
}

// ListBreakGlass lists a user's valid grants decrypted.
func (s *Store) ListBreakGlass(ctx context.Context, userID string, at time.Time) ([]store.BreakGlass, error) {
	gs, err := s.Store.ListBreakGlass(ctx, userID, at)
	if err != nil {
		return nil, err
	}
	for i := range gs {
		if gs[i].Reason, err = s.openText(ctx, "break_glass", "reason", gs[i].ID, gs[i].Reason); err != nil {
			return nil, fmt.Errorf("list break-glass grants of %s: %w", userID, err)
		}
	}
	return gs, nil
}

// --- sessions ---------------------------------------------------------------

// CreateSession stores a session with its note encrypted.
func (s *Store) CreateSession(ctx context.Context, x store.Session) error {
	var err error
	if x.Note, err = s.sealText(ctx, datakey.PersonOwner(x.PersonID), "sessions", "note", x.ID, x.Note); err != nil {
		return fmt.Errorf("create session %s: %w", x.ID, err)
	}
	return s.Store.CreateSession(ctx, x)
}

func (s *Store) openSession(ctx context.Context, x *store.Session) error {
	var err error
	x.Note, err = s.openText(ctx, "sessions", "note", x.ID, x.Note)
	return err
}

// GetSession returns a session with its note decrypted.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	x, err := s.Store.GetSession(ctx, id)
	if err != nil {
		return x, err
	}
	if err := s.openSession(ctx, &x); err != nil {
		return store.Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	return x, nil
}

// UpdateSession writes a session's mutable fields (the note is not one)
// and returns it decrypted.
func (s *Store) UpdateSession(ctx context.Context, x store.Session) (store.Session, error) {
	got, err := s.Store.UpdateSession(ctx, x)
	if err != nil {
		return got, err
	}
	if err := s.openSession(ctx, &got); err != nil {
		return store.Session{}, fmt.Errorf("update session %s: %w", x.ID, err)
	}
	return got, nil
}

// ListSessions lists sessions with notes decrypted.
func (s *Store) ListSessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error) {
	xs, err := s.Store.ListSessions(ctx, f)
	if err != nil {
		return nil, err
	}
	for i := range xs {
		if err := s.openSession(ctx, &xs[i]); err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
	}
	return xs, nil
}

// --- alerts -----------------------------------------------------------------

// entryRow binds a timeline entry's detail to its alert's cause (the
// dedup key): an entry that joins an open alert keeps opening there.
func entryRow(dedupKey string) string { return "dedup:" + dedupKey }

func (s *Store) sealAlert(ctx context.Context, a *store.Alert) error {
	for _, f := range []struct {
		col string
		v   *string
	}{{"note", &a.Note}, {"detail", &a.Detail}, {"outcome_note", &a.OutcomeNote}} {
		ct, err := s.sealAlertText(ctx, a.PersonID, a.OrgID, "alerts", f.col, a.ID, *f.v)
		if err != nil {
			return err
		}
		*f.v = ct
	}
	return nil
}

func (s *Store) sealEntry(ctx context.Context, a store.Alert, e *store.AlertEntry) error {
	var err error
	e.Detail, err = s.sealAlertText(ctx, a.PersonID, a.OrgID, "alert_entries", "detail", entryRow(a.DedupKey), e.Detail)
	return err
}

func (s *Store) openAlert(ctx context.Context, a *store.Alert) error {
	for _, f := range []struct {
		col string
		v   *string
	}{{"note", &a.Note}, {"detail", &a.Detail}, {"outcome_note", &a.OutcomeNote}} {
		pt, err := s.openText(ctx, "alerts", f.col, a.ID, *f.v)
		if err != nil {
			return err
		}
		*f.v = pt
	}
	for i := range a.Timeline {
		pt, err := s.openText(ctx, "alert_entries", "detail", entryRow(a.DedupKey), a.Timeline[i].Detail)
		if err != nil {
			return err
		}
		a.Timeline[i].Detail = pt
	}
	return nil
}

// RaiseAlert stores an alert with its note, detail and first entry
// encrypted; see store.SafetyStore.
func (s *Store) RaiseAlert(ctx context.Context, a store.Alert, first store.AlertEntry) (store.Alert, store.RaiseResult, error) {
	if err := s.sealAlert(ctx, &a); err != nil {
		return store.Alert{}, 0, fmt.Errorf("raise alert %s: %w", a.ID, err)
	}
	if err := s.sealEntry(ctx, a, &first); err != nil {
		return store.Alert{}, 0, fmt.Errorf("raise alert %s: %w", a.ID, err)
	}
	got, res, err := s.Store.RaiseAlert(ctx, a, first)
	if err != nil {
		return got, res, err
	}
	if err := s.openAlert(ctx, &got); err != nil {
		return store.Alert{}, 0, fmt.Errorf("raise alert %s: %w", a.ID, err)
	}
	return got, res, nil
}

// UpdateAlert writes an alert's lifecycle fields (the outcome note
// encrypted) and appends e (its detail encrypted).
func (s *Store) UpdateAlert(ctx context.Context, a store.Alert, e store.AlertEntry) (store.Alert, error) {
	var err error
	if a.OutcomeNote, err = s.sealAlertText(ctx, a.PersonID, a.OrgID, "alerts", "outcome_note", a.ID, a.OutcomeNote); err != nil {
		return store.Alert{}, fmt.Errorf("update alert %s: %w", a.ID, err)
	}
	if err := s.sealEntry(ctx, a, &e); err != nil {
		return store.Alert{}, fmt.Errorf("update alert %s: %w", a.ID, err)
	}
	got, err := s.Store.UpdateAlert(ctx, a, e)
	if err != nil {
		return got, err
	}
	if err := s.openAlert(ctx, &got); err != nil {
		return store.Alert{}, fmt.Errorf("update alert %s: %w", a.ID, err)
	}
	return got, nil
}

// AddAlertEntry appends e to an alert's timeline with its detail (a
// responder's note) encrypted.
func (s *Store) AddAlertEntry(ctx context.Context, alertID string, e store.AlertEntry) (bool, error) {
	a, err := s.Store.GetAlert(ctx, alertID)
	if err != nil {
		return false, err
	}
	if err := s.sealEntry(ctx, a, &e); err != nil {
		return false, fmt.Errorf("add entry to alert %s: %w", alertID, err)
	}
	return s.Store.AddAlertEntry(ctx, alertID, e)
}

// GetAlert returns an alert and its timeline decrypted.
func (s *Store) GetAlert(ctx context.Context, id string) (store.Alert, error) {
	a, err := s.Store.GetAlert(ctx, id)
	if err != nil {
		return a, err
	}
	if err := s.openAlert(ctx, &a); err != nil {
		return store.Alert{}, fmt.Errorf("get alert %s: %w", id, err)
	}
	return a, nil
}

// ListAlerts lists alerts decrypted.
func (s *Store) ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	as, err := s.Store.ListAlerts(ctx, f)
	if err != nil {
		return nil, err
	}
	for i := range as {
		if err := s.openAlert(ctx, &as[i]); err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
	}
	return as, nil
}

// --- deliveries -------------------------------------------------------------

// BeginDelivery records a delivery with its target address encrypted
// under the organisation's key.
func (s *Store) BeginDelivery(ctx context.Context, d store.Delivery) (store.Delivery, bool, error) {
	var err error
	if d.Target, err = s.sealText(ctx, datakey.OrgOwner(d.OrgID), "deliveries", "target", d.Key, d.Target); err != nil {
		return store.Delivery{}, false, fmt.Errorf("begin delivery: %w", err)
	}
	got, created, err := s.Store.BeginDelivery(ctx, d)
	if err != nil {
		return got, created, err
	}
	if got.Target, err = s.openText(ctx, "deliveries", "target", got.Key, got.Target); err != nil {
		return store.Delivery{}, false, fmt.Errorf("begin delivery: %w", err)
	}
	return got, created, nil
}

// ListDeliveries lists an alert's deliveries decrypted.
func (s *Store) ListDeliveries(ctx context.Context, alertID string) ([]store.Delivery, error) {
	ds, err := s.Store.ListDeliveries(ctx, alertID)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		if ds[i].Target, err = s.openText(ctx, "deliveries", "target", ds[i].Key, ds[i].Target); err != nil {
			return nil, fmt.Errorf("list deliveries of %s: %w", alertID, err)
		}
	}
	return ds, nil
}
