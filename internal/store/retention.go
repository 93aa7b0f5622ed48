package store

import (
	"context"
	"time"
)

// RetentionPolicy is how long an organisation keeps each class of personal
// data. A zero period means "the default" (internal/retention fills it in
// and checks the bounds; the store keeps what it is given).
type RetentionPolicy struct {
	OrgID     string
	Positions time.Duration // position history, by device time
	Events    time.Duration // the event log (motion windows, alarms, …), by received time
	Alerts    time.Duration // closed alerts with their timeline and deliveries, by closing time
	Audit     time.Duration // audit log records (kept in the policy; see docs/retention.md)
	UpdatedAt time.Time     // zero when never set
	UpdatedBy string
}

// RetentionStore keeps and applies per-organisation retention; part of
// Store.
//
// Each Purge method deletes, in one short transaction, at most limit of
// the organisation's records older than before and returns how many it
// deleted; callers loop until it returns fewer than limit. Records of a
// device or person with an open alert (pending, raised or acknowledged)
// are never purged, and neither are open alerts.
type RetentionStore interface {
	// GetRetention returns an organisation's stored policy, with zero
	// periods when none was ever set; unknown org: ErrNotFound.
	GetRetention(ctx context.Context, orgID string) (RetentionPolicy, error)
	// SetRetention stores a policy (whole); unknown org: ErrNotFound.
	SetRetention(ctx context.Context, p RetentionPolicy) error
	// PurgePositions deletes position history with device time < before.
	PurgePositions(ctx context.Context, orgID string, before time.Time, limit int) (int, error)
	// PurgeEvents deletes event-log records received before before.
	PurgeEvents(ctx context.Context, orgID string, before time.Time, limit int) (int, error)
	// PurgeAlerts deletes closed (resolved or cancelled) alerts closed
	// before before, with their entries, escalation and deliveries; limit
	// and the count are alerts.
	PurgeAlerts(ctx context.Context, orgID string, before time.Time, limit int) (int, error)
	// PurgeAuditBefore deletes audit records (of every organisation: the
	// chain is one) with seq < before, and their checkpoints, one whole
	// checkpoint range or more per call, about limit records: the oldest
	// record left is always a checkpointed one, so the chain stays
	// verifiable from it (audit.Verify) after each call. before must be a
	// checkpoint's seq (else ErrNotFound); record before is kept. It
	// returns how many records it deleted, 0 when none are left below
	// before.
	PurgeAuditBefore(ctx context.Context, before int64, limit int) (int, error)
}
