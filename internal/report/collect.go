package report

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"vigil/internal/store"
)

// Source is what Collect reads: the store's alert listing (newest first,
// paging back with RaisedBefore) and an alert's deliveries.
type Source interface {
	ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	ListDeliveries(ctx context.Context, alertID string) ([]store.Delivery, error)
}

// pageSize is the most ListAlerts returns at once.
const pageSize = 1000

// Collect reads the facts of the alerts of org ("" for every
// organisation) received in p, oldest first (ties by alert id). It pages
// back from the end of the month; alerts raised at the same instant across
// a page boundary are read once each. It fails, rather than skip any, if a
// whole page (1000 alerts) was raised at one instant.
func Collect(ctx context.Context, src Source, org string, p Period) ([]Fact, error) {
	seen := map[string]bool{}
	var facts []Fact
	before := p.To
	for {
		page, err := src.ListAlerts(ctx, store.AlertFilter{OrgID: org, RaisedBefore: before, Limit: pageSize})
		if err != nil {
			return nil, fmt.Errorf("collect %s: list alerts before %s: %w", p.Month, before.UTC().Format(time.RFC3339Nano), err)
		}
		done, progress := len(page) < pageSize, false
		for _, a := range page {
			if a.RaisedAt.Before(p.From) {
				done = true // newest first: the rest are older still
				break
			}
			if seen[a.ID] || !p.Contains(a.RaisedAt) {
				continue
			}
			seen[a.ID], progress = true, true
			f := FromAlert(a, nil)
			if !f.RaisedFor.IsZero() {
				ds, err := src.ListDeliveries(ctx, a.ID)
				if err != nil {
					return nil, fmt.Errorf("collect %s: deliveries of alert %s: %w", p.Month, a.ID, err)
				}
				f = FromAlert(a, ds)
			}
			facts = append(facts, f)
		}
		if done {
			break
		}
		if !progress {
			return nil, fmt.Errorf("collect %s: %d or more alerts raised at %s: cannot page past them", p.Month, pageSize, page[len(page)-1].RaisedAt.UTC().Format(time.RFC3339Nano))
		}
		// RaisedBefore is strict: step one nanosecond past the last alert
		// so that others raised at the same instant are not skipped (the
		// seen set drops the ones already read).
		before = page[len(page)-1].RaisedAt.Add(time.Nanosecond)
	}
	slices.SortFunc(facts, func(a, b Fact) int {
		return cmp.Or(a.Received.Compare(b.Received), cmp.Compare(a.AlertID, b.AlertID))
	})
	return facts, nil
}

// FromAlert is the fact of one alert as stored, with its deliveries (any
// order). The response clock starts at the later of RaisedAt and
// PendingUntil: a pre-alert reaches responders when it ends.
func FromAlert(a store.Alert, ds []store.Delivery) Fact {
	f := Fact{AlertID: a.ID, Kind: a.Kind, Activation: a.CauseTime, Received: a.RaisedAt, Acknowledged: a.AcknowledgedAt}
	switch a.State {
	case store.AlertResolved:
		f.Resolved, f.Outcome = a.ClosedAt, a.Outcome
	case store.AlertCancelled:
		f.Cancelled = a.ClosedAt
	}
	preAlertCancelled := a.State == store.AlertCancelled && !a.PendingUntil.IsZero() && a.ClosedAt.Before(a.PendingUntil)
	if a.State != store.AlertPending && !preAlertCancelled {
		f.RaisedFor = a.RaisedAt
		if a.PendingUntil.After(f.RaisedFor) {
			f.RaisedFor = a.PendingUntil
		}
	}
	for _, d := range ds {
		if d.Status != store.DeliverySent || d.DoneAt.IsZero() {
			continue
		}
		if f.Presented.IsZero() || d.DoneAt.Before(f.Presented) {
			f.Presented = d.DoneAt
		}
	}
	return f
}
