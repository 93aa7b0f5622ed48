package alert

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"vigil/internal/clock"
	"vigil/internal/store"
)

// Store is what the lifecycle needs of the store.
type Store interface {
	GetAlert(ctx context.Context, id string) (store.Alert, error)
	UpdateAlert(ctx context.Context, a store.Alert, e store.AlertEntry) (store.Alert, error)
	AddAlertEntry(ctx context.Context, alertID string, e store.AlertEntry) (bool, error)
	GetPerson(ctx context.Context, id string) (store.Person, error)
}

// Service applies lifecycle transitions through the store.
type Service struct {
	st  Store
	clk clock.Clock
}

// NewService returns a Service.
func NewService(st Store, clk clock.Clock) *Service { return &Service{st: st, clk: clk} }

// transition loads the alert, applies f and stores the result, reloading
// and deciding again if someone else changed the alert meanwhile.
func (s *Service) transition(ctx context.Context, id string, f func(a store.Alert, now time.Time) (store.Alert, store.AlertEntry, error)) (store.Alert, error) {
	for attempt := 0; ; attempt++ {
		a, err := s.st.GetAlert(ctx, id)
		if err != nil {
			return store.Alert{}, err
		}
		next, e, err := f(a, s.clk.Now().UTC())
		if err != nil {
			return a, err
		}
		got, err := s.st.UpdateAlert(ctx, next, e)
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			continue
		}
		return got, err
	}
}

// Acknowledge takes ownership of an alert for by (e.g. "user:u1").
func (s *Service) Acknowledge(ctx context.Context, id, by, note string) (store.Alert, error) {
	return s.transition(ctx, id, func(a store.Alert, now time.Time) (store.Alert, store.AlertEntry, error) {
		return Acknowledge(a, by, now, note)
	})
}

// Resolve closes an alert with an outcome.
func (s *Service) Resolve(ctx context.Context, id, by, outcome, note string) (store.Alert, error) {
	return s.transition(ctx, id, func(a store.Alert, now time.Time) (store.Alert, store.AlertEntry, error) {
		return Resolve(a, by, now, outcome, note)
	})
}

// Escalate raises a pending pre-alert whose window has passed; a pre-alert
// already cancelled or raised is left alone (nil error, unchanged alert).
func (s *Service) Escalate(ctx context.Context, id string) (store.Alert, error) {
	a, err := s.transition(ctx, id, func(a store.Alert, now time.Time) (store.Alert, store.AlertEntry, error) {
		return Escalate(a, now)
	})
	if err != nil && errors.Is(err, ErrIllegal) && a.State != store.AlertPending {
		return a, nil
	}
	return a, err
}

// HelpFor raises pending pre-alert id at once for by, who asked for help,
// recording cause (the device event) on the timeline entry. An alert that
// is no longer pending is returned unchanged with ErrIllegal.
func (s *Service) HelpFor(ctx context.Context, id, by, cause string) (store.Alert, error) {
	return s.transition(ctx, id, func(a store.Alert, now time.Time) (store.Alert, store.AlertEntry, error) {
		a, e, err := Help(a, by, now)
		e.Cause = cause
		return a, e, err
	})
}

// Cancel is a cancel from the wearer (by names the device or person).
// code is the PIN given with it, if any: the person's duress code turns
// the cancel into duress. It returns the alert as the wearer must see it
// (WearerView) — cancelled both for a real cancel and for duress. A
// cancel after the window is recorded on the timeline and refused with
// ErrCancelWindow.
func (s *Service) Cancel(ctx context.Context, id, by, code string) (store.Alert, error) {
	return s.CancelFor(ctx, id, by, code, "")
}

// CancelFor is Cancel recording cause (e.g. the device event that asked
// for it) on the timeline entry, so the same cause never acts twice.
func (s *Service) CancelFor(ctx context.Context, id, by, code, cause string) (store.Alert, error) {
	got, err := s.transition(ctx, id, func(a store.Alert, now time.Time) (store.Alert, store.AlertEntry, error) {
		a, e, err := s.cancel(ctx, a, now, by, code)
		e.Cause = cause
		return a, e, err
	})
	return s.outcome(ctx, id, by, cause, got, err)
}

// cancel decides a wearer's cancel: duress when code is the person's
// duress code, a plain cancel otherwise.
func (s *Service) cancel(ctx context.Context, a store.Alert, now time.Time, by, code string) (store.Alert, store.AlertEntry, error) {
	if code != "" && a.PersonID != "" {
		p, err := s.st.GetPerson(ctx, a.PersonID)
		if err != nil {
			return a, store.AlertEntry{}, fmt.Errorf("check code: %w", err)
		}
		if IsDuressCode(p, code) {
			if a.Duress {
				return a, store.AlertEntry{}, errAlreadyDuress
			}
			return Duress(a, by, now)
		}
	}
	return Cancel(a, by, now)
}

// outcome turns a cancel's result into what the wearer sees, recording a
// refused late cancel on the timeline.

func (s *Service) outcome(ctx context.Context, id, by, cause string, got store.Alert, err error) (store.Alert, error) {
	switch {
	case errors.Is(err, errAlreadyDuress):
		return WearerView(got), nil
	case errors.Is(err, ErrCancelWindow):
		e := CancelRefused(by, s.clk.Now().UTC())
		e.Cause = cause
		if _, aerr := s.st.AddAlertEntry(ctx, id, e); aerr != nil {
			return store.Alert{}, errors.Join(err, aerr)
		}
		return WearerView(got), err
	case err != nil:
		return WearerView(got), err
	}
	return WearerView(got), nil
}

// IsDuressCode reports whether code is the person's duress code (in
// constant time; false when they have none).
func IsDuressCode(p store.Person, code string) bool {
	return code != "" && len(p.DuressCodeHash) > 0 && subtle.ConstantTimeCompare(p.DuressCodeHash, store.DuressHash(p.ID, code)) == 1
}

var errAlreadyDuress = errors.New("alert: already duress")
