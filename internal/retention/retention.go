// Package retention decides how long each organisation keeps each class of
// personal data (positions, the event log, closed alerts, audit records)
// and purges what is older, in bounded batches, on a schedule that its
// caller drives.
//
// Policy: a period per class, stored per organisation; a zero period reads
// as the default (Defaults), and Validate keeps every period within
// Bounds. Open alerts (pending, raised, acknowledged), and the positions
// and events of a device or person with an open alert, are never purged:
// the store's Purge methods exclude them.
//
// Purge: Purger.Run walks the organisations and, per class, calls the
// store's Purge method with a row limit until a batch comes back short.
// Each batch is its own short transaction, so writers (the event
// projector, the alert engine) get the database between batches. Time is
// an input (the clock given to New); nothing here sleeps unless
// Config.Pause is set.
//
// Audit records: the audit log is one hash chain across all organisations
// (internal/audit), so Run removes only its oldest whole checkpoint
// ranges, while every record in them is past its organisation's audit
// period, and keeps the checkpointed record the rest links to; Verify
// accepts a chain that starts there.
//
// This package imports internal/store (the types and its own small Store
// interface) and internal/clock. It must not import the store drivers,
// the bus, HTTP, or internal/app.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"vigil/internal/clock"
	"vigil/internal/store"
)

// Class is a class of personal data with its own retention period.
type Class string

// The classes.
const (
	Positions Class = "positions" // position history
	Events    Class = "events"    // the event log: motion windows, alarms, buttons, battery, heartbeats
	Alerts    Class = "alerts"    // closed alerts with their timeline, escalation and deliveries
	Audit     Class = "audit"     // audit log records
)

// Classes lists the classes in a stable order.
var Classes = []Class{Positions, Events, Alerts, Audit}

// Day is the unit periods are set in.
const Day = 24 * time.Hour

// year is 365 days; periods of years are rounded to whole days.
const year = 365 * Day

// Defaults are the periods of an organisation that set none; see
// docs/retention.md for the reasons.
var defaults = map[Class]time.Duration{
	Positions: 90 * Day,
	Events:    90 * Day,
	Alerts:    8 * year,
	Audit:     6 * year,
}

// Bound is the range a class's period must stay in.
type Bound struct{ Min, Max time.Duration }

var bounds = map[Class]Bound{
	Positions: {Min: Day, Max: 10 * year},
	Events:    {Min: Day, Max: 10 * year},
	// A closed alert is an incident record: at least a year, for the
	// review of an incident, a complaint or a safeguarding enquiry.
	Alerts: {Min: year, Max: 30 * year},
	// The audit trail outlives what it audits.
	Audit: {Min: year, Max: 30 * year},
}

// Default returns a class's default period.
func Default(c Class) time.Duration { return defaults[c] }

// BoundOf returns a class's bounds.
func BoundOf(c Class) Bound { return bounds[c] }

// Period returns a class's period in p (zero when not set there).
func Period(p store.RetentionPolicy, c Class) time.Duration {
	switch c {
	case Positions:
		return p.Positions
	case Events:
		return p.Events
	case Alerts:
		return p.Alerts
	case Audit:
		return p.Audit
	}
	return 0
}

// SetPeriod sets a class's period in p.
func SetPeriod(p *store.RetentionPolicy, c Class, d time.Duration) {
	switch c {
	case Positions:
		p.Positions = d
	case Events:
		p.Events = d
	case Alerts:
		p.Alerts = d
	case Audit:
		p.Audit = d
	}
}

// Effective returns p with every zero period replaced by its default.
func Effective(p store.RetentionPolicy) store.RetentionPolicy {
	for _, c := range Classes {
		if Period(p, c) == 0 {
			SetPeriod(&p, c, defaults[c])
		}
	}
	return p
}

// FieldError names the class whose period is out of bounds.
type FieldError struct {
	Class Class
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("retention %s: %s", e.Class, e.Msg) }

// Validate checks every period set in p (zero is the default, always
// valid): whole days within the class's bounds. The error is a
// *FieldError.
func Validate(p store.RetentionPolicy) error {
	for _, c := range Classes {
		d := Period(p, c)
		if d == 0 {
			continue
		}
		b := bounds[c]
		switch {
		case d%Day != 0:
			return &FieldError{c, "must be a whole number of days"}
		case d < b.Min || d > b.Max:
			return &FieldError{c, fmt.Sprintf("must be between %d and %d days", b.Min/Day, b.Max/Day)}
		}
	}
	return nil
}

// Store is what the purger needs of the store.
type Store interface {
	ListOrgs(ctx context.Context) ([]store.Org, error)
	GetRetention(ctx context.Context, orgID string) (store.RetentionPolicy, error)
	PurgePositions(ctx context.Context, orgID string, before time.Time, limit int) (int, error)
	PurgeEvents(ctx context.Context, orgID string, before time.Time, limit int) (int, error)
	PurgeAlerts(ctx context.Context, orgID string, before time.Time, limit int) (int, error)
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
	ListAuditCheckpoints(ctx context.Context) ([]store.AuditCheckpoint, error)
	PurgeAuditBefore(ctx context.Context, before int64, limit int) (int, error)
}

// Config tunes the purger; the zero value works.
type Config struct {
	// BatchRows is the most positions or events deleted per transaction;
	// default 5000.
	BatchRows int
	// BatchAlerts is the most alerts deleted per transaction (each with
	// its timeline and deliveries, tens of rows); default 200.
	BatchAlerts int
	// Pause is waited between batches, on the purger's clock, to leave
	// the database to other writers; default 0 (the next batch queues
	// behind any waiting writer anyway).
	Pause time.Duration
}

// Purger deletes what each organisation's policy no longer allows to keep.
type Purger struct {
	st    Store
	clock clock.Timers
	log   *slog.Logger
	cfg   Config
}

// New returns a purger over st, reading time from c.
func New(st Store, c clock.Clock, log *slog.Logger, cfg Config) *Purger {
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = 5000
	}
	if cfg.BatchAlerts <= 0 {
		cfg.BatchAlerts = 200
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Purger{st: st, clock: clock.TimersOf(c), log: log, cfg: cfg}
}

// Report is what one run purged.
type Report struct {
	At      time.Time                // the run's "now"
	Rows    map[Class]int            // rows (alerts for Alerts) purged, per class
	PerOrg  map[string]map[Class]int // the same per organisation
	Batches int                      // transactions that deleted something or found nothing more
	Took    time.Duration            // on the purger's clock
}

// Run purges every organisation once, as of the clock's now, then the
// audit log's oldest checkpoint ranges (see purgeAudit). An error for one
// organisation does not stop the others (it does stop the audit purge);
// all errors are joined.
func (p *Purger) Run(ctx context.Context) (Report, error) {
	orgs, err := p.st.ListOrgs(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("purge: list organisations: %w", err)
	}
	ids := make([]string, len(orgs))
	for i, o := range orgs {
		ids[i] = o.ID
	}
	return p.run(ctx, ids, true)
}

// RunOrg purges one organisation once, as of the clock's now; the audit
// log, one chain for all organisations, is left to Run.
func (p *Purger) RunOrg(ctx context.Context, orgID string) (Report, error) {
	return p.run(ctx, []string{orgID}, false)
}

func (p *Purger) run(ctx context.Context, orgIDs []string, withAudit bool) (Report, error) {
	start := p.clock.Now()
	r := Report{At: start, Rows: map[Class]int{}, PerOrg: map[string]map[Class]int{}}
	var errs []error
	auditPeriods := map[string]time.Duration{}
	for _, org := range orgIDs {
		pol, err := p.purgeOrg(ctx, org, start, &r)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		if pol.OrgID != "" {
			auditPeriods[org] = pol.Audit
		}
	}
	if withAudit && len(errs) == 0 {
		if err := p.purgeAudit(ctx, start, auditPeriods, &r); err != nil {
			errs = append(errs, err)
		}
	}
	r.Took = p.clock.Now().Sub(start)
	err := errors.Join(errs...)
	p.log.Info("retention purge", "orgs", len(orgIDs), "positions", r.Rows[Positions], "events", r.Rows[Events],
		"alerts", r.Rows[Alerts], "audit", r.Rows[Audit], "batches", r.Batches, "took", r.Took, "failed", len(errs))
	return r, err
}

// purgeAudit removes the oldest records of the audit log, one chain for
// every organisation, while each is past its organisation's audit period
// (records of no organisation, or of one since deleted, wait for the
// longest period of any). The chain is cut only at a checkpoint, keeping
// the checkpointed record: audit.Verify then checks the rest from that
// record, whose signed checkpoint anchors it. So the log may keep up to a
// checkpoint range (1000 records by default) past its period.
func (p *Purger) purgeAudit(ctx context.Context, now time.Time, periods map[string]time.Duration, r *Report) error {
	longest := defaults[Audit]
	for _, d := range periods {
		longest = max(longest, d)
	}
	cps, err := p.st.ListAuditCheckpoints(ctx)
	if err != nil {
		return fmt.Errorf("purge audit: %w", err)
	}
	if len(cps) == 0 {
		return nil
	}
	// keep: the first record that must stay (or one past the head).
	var keep, after int64
scan:
	for {
		page, err := p.st.ListAudit(ctx, store.AuditFilter{AfterSeq: after, Limit: 1000})
		if err != nil {
			return fmt.Errorf("purge audit: %w", err)
		}
		for _, rec := range page {
			d, ok := periods[rec.OrgID]
			if !ok {
				d = longest
			}
			if !rec.At.Before(now.Add(-d)) {
				keep = rec.Seq
				break scan
			}
			after = rec.Seq
		}
		if len(page) < 1000 {
			keep = after + 1
			break
		}
		if cps[len(cps)-1].Seq <= after {
			keep = after + 1 // past the last checkpoint: the cut is known
			break
		}
	}
	var cut int64
	for _, c := range cps {
		if c.Seq <= keep {
			cut = c.Seq
		}
	}
	if cut == 0 {
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("purge audit: %w", err)
		}
		n, err := p.st.PurgeAuditBefore(ctx, cut, p.cfg.BatchRows)
		r.Batches++
		r.Rows[Audit] += n
		if err != nil {
			return fmt.Errorf("purge audit: %w", err)
		}
		if n == 0 {
			return nil
		}
		if err := p.pause(ctx); err != nil {
			return fmt.Errorf("purge audit: %w", err)
		}
	}
}

func (p *Purger) purgeOrg(ctx context.Context, org string, now time.Time, r *Report) (store.RetentionPolicy, error) {
	pol, err := p.st.GetRetention(ctx, org)
	if err != nil {
		return store.RetentionPolicy{}, fmt.Errorf("purge %s: %w", org, err)
	}
	pol = Effective(pol)
	jobs := []struct {
		c     Class
		limit int
		fn    func(context.Context, string, time.Time, int) (int, error)
	}{
		{Positions, p.cfg.BatchRows, p.st.PurgePositions},
		{Events, p.cfg.BatchRows, p.st.PurgeEvents},
		{Alerts, p.cfg.BatchAlerts, p.st.PurgeAlerts},
	}
	for _, j := range jobs {
		before := now.Add(-Period(pol, j.c))
		for {
			if err := ctx.Err(); err != nil {
				return pol, fmt.Errorf("purge %s of %s: %w", j.c, org, err)
			}
			n, err := j.fn(ctx, org, before, j.limit)
			r.Batches++
			if n > 0 {
				r.Rows[j.c] += n
				if r.PerOrg[org] == nil {
					r.PerOrg[org] = map[Class]int{}
				}
				r.PerOrg[org][j.c] += n
			}
			if err != nil {
				return pol, fmt.Errorf("purge %s of %s: %w", j.c, org, err)
			}
			if n < j.limit {
				break
			}
			if err := p.pause(ctx); err != nil {
				return pol, fmt.Errorf("purge %s of %s: %w", j.c, org, err)
			}
		}
	}
	return pol, nil
}

// pause yields between batches: always to other goroutines, and for
// Config.Pause on the clock when set.
func (p *Purger) pause(ctx context.Context) error {
	runtime.Gosched()
	if p.cfg.Pause <= 0 {
		return nil
	}
	t := p.clock.NewTimer()
	defer t.Stop()
	t.ResetAt(p.clock.Now().Add(p.cfg.Pause))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}
