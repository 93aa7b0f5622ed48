package store

import (
	"context"
	"time"
)

// DataKey is a data-encryption key as stored: wrapped by the install's
// key-encryption key, which is never in the database (internal/datakey).
// Owner is "person:<id>" or "org:<id>"; each owner has at most one key,
// and a destroyed key stays as a tombstone (Wrapped nil) so that none is
// made again for an erased person.
type DataKey struct {
	ID          string
	Owner       string
	KEKID       string
	Wrapped     []byte // nil once destroyed
	CreatedAt   time.Time
	DestroyedAt time.Time // zero while live
}

// Erasure is one line of the erasure ledger: who (by id only) was erased
// when, and the receipt (JSON: counts per class, what was kept and why;
// never personal data).
type Erasure struct {
	PersonID  string
	OrgID     string
	ErasedAt  time.Time
	ReceiptID string
	Receipt   string
}

// ErasureReceipt says what erasing a person removed and what it kept and
// why. It names the person by id only; Reason is the legal basis the
// administrator gave (e.g. "GDPR Art. 17 request of 2026-01-05").
type ErasureReceipt struct {
	ID       string         `json:"receipt_id"`
	PersonID string         `json:"person_id"`
	OrgID    string         `json:"org_id"`
	ErasedAt time.Time      `json:"erased_at"`
	Reason   string         `json:"reason"`
	Erased   map[string]int `json:"erased"`
	Kept     []ErasureKept  `json:"kept"`
	// DataKeyDestroyed: the person's data key was destroyed by this
	// erasure, so every copy of their encrypted data (store, backups) is
	// unreadable.
	DataKeyDestroyed bool `json:"data_key_destroyed"`
}

// ErasureKept is a class of records kept after an erasure, and why.
type ErasureKept struct {
	Class string `json:"class"`
	Count int    `json:"count"`
	Why   string `json:"why"`
}

// ErasedRows counts what ErasePerson removed or changed, per class.
type ErasedRows struct {
	Person           int // the person row
	MedicalNotes     int
	Contacts         int
	CarerLinks       int
	Photos           int
	Sessions         int
	Positions        int
	Events           int
	BreakGlass       int
	DevicesUnlinked  int // devices unassigned (kept: they are the organisation's)
	UsersUnlinked    int // accounts no longer linked to the person (kept: staff accounts)
	AlertsKept       int // closed alerts kept as incident records, contents shredded
	AlertPositions   int // kept alerts whose location snapshot was removed
	DeliveriesMasked int // deliveries of kept alerts whose target address was removed
	// PlaintextCleared counts kept alerts and timeline entries whose text
	// was stored before encryption was on (so no key shreds it): cleared.
	PlaintextCleared int
}

// PrivacyStore keeps wrapped data keys and the erasure ledger, and erases
// a person's rows; part of Store.
type PrivacyStore interface {
	// CreateDataKey stores k unless its owner has a key (live or
	// destroyed) already, and returns the owner's stored key.
	CreateDataKey(ctx context.Context, k DataKey) (DataKey, error)
	// GetDataKey and GetOwnerDataKey: none stored is ErrNotFound.
	GetDataKey(ctx context.Context, id string) (DataKey, error)
	GetOwnerDataKey(ctx context.Context, owner string) (DataKey, error)
	// RewrapDataKey replaces a live key's wrapping if it is still wrapped
	// by oldKEKID; false when it changed nothing.
	RewrapDataKey(ctx context.Context, id, oldKEKID, newKEKID string, wrapped []byte) (bool, error)
	// DestroyDataKey deletes an owner's wrapped key, keeping a tombstone
	// (creating one when the owner had no key); true when a live key was
	// destroyed now.
	DestroyDataKey(ctx context.Context, owner string, at time.Time) (bool, error)
	// CountDataKeysByKEK counts live keys by the KEK key that wraps them.
	CountDataKeysByKEK(ctx context.Context) (map[string]int, error)
	// ListLiveDataKeys lists up to limit live keys with ID > after, by ID.
	ListLiveDataKeys(ctx context.Context, after string, limit int) ([]DataKey, error)

	// ErasePerson deletes, in one transaction, everything held about a
	// person that no legal duty keeps: the person row, medical notes,
	// contacts, carer links, photo, sessions, break-glass grants, and the
	// position history and event log of the devices assigned to them
	// (which are unassigned); accounts linked to the person are unlinked.
	// Closed alerts about the person are kept (incident records) with
	// their location snapshot and delivery addresses removed; their text
	// is shredded by destroying the person's data key (the caller's job),
	// and text stored before encryption was on (no SealedPrefix) is
	// cleared. Unknown person: ErrNotFound. A person with an open alert or an
	// active session: ErrConflict (close them first).
	ErasePerson(ctx context.Context, personID string) (ErasedRows, error)
	// PutErasure records an erasure (ErrConflict if the person is already
	// in the ledger); GetErasure returns one or ErrNotFound; ListErasures
	// lists the ledger by time.
	PutErasure(ctx context.Context, e Erasure) error
	GetErasure(ctx context.Context, personID string) (Erasure, error)
	ListErasures(ctx context.Context) ([]Erasure, error)

	// ListPersonCarers lists the ids of the users linked to a person as
	// carers, sorted.
	ListPersonCarers(ctx context.Context, personID string) ([]string, error)

	UnsealedStore
}

// SealedPrefix starts every value the encryption decorator sealed into a
// text column (internal/store/encrypted).
const SealedPrefix = "enc1:"

// PlainField names a personal text column the encryption decorator seals.
type PlainField struct{ Table, Column string }

// PlainFields are the text columns that hold sealed personal data.
var PlainFields = []PlainField{
	{"people", "name"}, {"people", "medical_notes"},
	{"contacts", "name"}, {"contacts", "relation"}, {"contacts", "phone"}, {"contacts", "email"},
	{"sessions", "note"},
	{"alerts", "note"}, {"alerts", "detail"}, {"alerts", "outcome_note"},
	{"alert_entries", "detail"},
	{"break_glass", "reason"},
	{"deliveries", "target"},
}

// UnsealedValue is a non-empty value of a PlainField stored before
// encryption was turned on, with what sealing it needs: its row id (an
// alert entry's is "<alert id>/<seq>"), whose it is, and for an alert
// entry its alert's dedup key.
type UnsealedValue struct {
	RowID    string
	PersonID string
	OrgID    string
	DedupKey string
	Value    string
}

// UnsealedStore finds and replaces values stored in plaintext, for
// `vigil keys encrypt-existing`; part of PrivacyStore.
type UnsealedStore interface {
	// ListUnsealed lists up to limit non-empty values of f that do not
	// start with SealedPrefix. Unknown field: an error.
	ListUnsealed(ctx context.Context, f PlainField, limit int) ([]UnsealedValue, error)
	// ReplaceUnsealed sets f of row rowID to sealed if it still holds
	// old; false when it changed meanwhile.
	ReplaceUnsealed(ctx context.Context, f PlainField, rowID, old, sealed string) (bool, error)
}

// UnsealedQuery is the SQL shape of a PlainField: the row id, person,
// organisation and dedup key expressions, the FROM clause and the WHERE
// clause that selects one row by its id parts. Both dialects build their
// queries from it.
type UnsealedQuery struct {
	RowID, Person, Org, Dedup, From string
	// KeyCols are the columns that identify a row, in the order of the
	// "/"-separated parts of RowID.
	KeyCols []string
}

// UnsealedQueryOf returns the shape of f, or false for an unknown field.
func UnsealedQueryOf(f PlainField) (UnsealedQuery, bool) {
	known := false
	for _, x := range PlainFields {
		known = known || x == f
	}
	if !known {
		return UnsealedQuery{}, false
	}
	switch f.Table {
	case "people":
		return UnsealedQuery{RowID: "t.id", Person: "t.id", Org: "t.org_id", Dedup: "''", From: "people t", KeyCols: []string{"id"}}, true
	case "alert_entries":
		return UnsealedQuery{RowID: "t.alert_id || '/' || CAST(t.seq AS TEXT)", Person: "a.person_id", Org: "a.org_id", Dedup: "a.dedup_key",
			From: "alert_entries t JOIN alerts a ON a.id = t.alert_id", KeyCols: []string{"alert_id", "seq"}}, true
	case "deliveries":
		return UnsealedQuery{RowID: "t.key", Person: "''", Org: "t.org_id", Dedup: "''", From: "deliveries t", KeyCols: []string{"key"}}, true
	default: // contacts, sessions, alerts, break_glass
		return UnsealedQuery{RowID: "t.id", Person: "t.person_id", Org: "t.org_id", Dedup: "''", From: f.Table + " t", KeyCols: []string{"id"}}, true
	}
}
