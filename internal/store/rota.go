package store

import (
	"context"
	"time"
)

// Rota is an organisation's on-call rota: a weekly pattern of shifts read
// on the wall clock of TimeZone, and dated overrides that replace the
// pattern while they last (internal/escalation says who is on call when).
// Name is the rota's id within the organisation (a slug, not personal
// data); Shifts and Overrides name users by id.
type Rota struct {
	OrgID     string
	Name      string
	TimeZone  string // IANA, e.g. "Europe/London"
	Shifts    []RotaShift
	Overrides []RotaOverride // ordered by From, then To, then ID
	UpdatedAt time.Time
}

// RotaShift is one shift of a rota's week: it starts on each of Days at
// Start and ends at End, both minutes after local midnight; an End at or
// before Start ends the next day (a night shift). Users are on call in
// order.
type RotaShift struct {
	Days  []time.Weekday `json:"days"`
	Start int            `json:"start"`
	End   int            `json:"end"`
	Users []string       `json:"users"`
}

// RotaOverride is dated cover: User is on call from From until To
// (sickness, a swap), in place of the weekly pattern.
type RotaOverride struct {
	ID        string
	OrgID     string
	Rota      string
	UserID    string
	From, To  time.Time
	CreatedAt time.Time
}

// RotaStore keeps on-call rotas (escalation recipients by schedule); part
// of Store.
type RotaStore interface {
	// PutRota creates or replaces a rota's time zone and shifts; its
	// overrides stay. The organisation must exist (else ErrNotFound).
	PutRota(ctx context.Context, r Rota) error
	// GetRota returns a rota with its overrides, or ErrNotFound.
	GetRota(ctx context.Context, orgID, name string) (Rota, error)
	// ListRotas returns an organisation's rotas by name, with overrides.
	ListRotas(ctx context.Context, orgID string) ([]Rota, error)
	// DeleteRota removes a rota and its overrides, or ErrNotFound.
	DeleteRota(ctx context.Context, orgID, name string) error
	// AddRotaOverride stores an override: ErrConflict if its ID is taken,
	// ErrNotFound if the rota or user does not exist.
	AddRotaOverride(ctx context.Context, o RotaOverride) error
	// DeleteRotaOverride removes one of a rota's overrides, or ErrNotFound.
	DeleteRotaOverride(ctx context.Context, orgID, rota, id string) error
}
