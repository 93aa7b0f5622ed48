package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"vigil/internal/audit"
	"vigil/internal/store"
)

// Break-glass bounds.
const (
	DefaultBreakGlass = 30 * time.Minute
	MaxBreakGlass     = time.Hour
)

// BreakGlass gives the caller read access to one person's details (the
// person, medical notes, contacts, alerts, sessions) for d (default 30
// min, at most an hour), for a reason of at least 10 characters. It is a
// high-severity audit entry, and the organisation's admins are told on the
// live console and by mail.
func (s *Service) BreakGlass(ctx context.Context, p *Principal, personID, reason string, d time.Duration, ip string) (store.BreakGlass, error) {
	if p == nil || p.UserID == "" || p.TokenID != "" {
		return store.BreakGlass{}, &FieldError{"", "break-glass is for signed-in people, not tokens"}
	}
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) < 10 || len(reason) > 1000 {
		return store.BreakGlass{}, &FieldError{"reason", "say why, in 10 to 1000 characters"}
	}
	if d == 0 {
		d = DefaultBreakGlass
	}
	if d < time.Minute || d > MaxBreakGlass {
		return store.BreakGlass{}, &FieldError{"minutes", "want 1 to 60 minutes"}
	}
	per, err := s.st.GetPerson(ctx, personID)
	if err != nil {
		return store.BreakGlass{}, fmt.Errorf("break glass: %w", err)
	}
	now := s.clk.Now()
	g := store.BreakGlass{ID: newID("bg_"), OrgID: per.OrgID, UserID: p.UserID, PersonID: per.ID, Reason: reason,
		CreatedAt: now, ExpiresAt: now.Add(d)}
	// Written to the audit log first: no grant without its record.
	if err := s.record(ctx, audit.Entry{OrgID: per.OrgID, Actor: p.UserID, SourceIP: ip, Action: "break_glass", ObjectType: "person",
		ObjectID: per.ID, Outcome: "ok", Severity: "high", Details: map[string]string{"grant": g.ID, "minutes": fmt.Sprint(int(d / time.Minute))}}); err != nil {
		return store.BreakGlass{}, err
	}
	if err := s.st.CreateBreakGlass(ctx, g); err != nil {
		return store.BreakGlass{}, fmt.Errorf("break glass: %w", err)
	}
	if s.cfg.Notice != nil {
		b, _ := json.Marshal(map[string]any{"grant": g.ID, "user_id": g.UserID, "person_id": g.PersonID, "expires_at": g.ExpiresAt.UTC()})
		s.cfg.Notice(per.OrgID, "break_glass", b)
	}
	if s.cfg.Mailer != nil {
		users, err := s.st.ListUsers(ctx, per.OrgID)
		if err != nil {
			s.log.Warn("break-glass: admins not mailed", "org_id", per.OrgID, "err", err)
		}
		for _, u := range users {
			if !u.DisabledAt.IsZero() || u.ID == p.UserID {
				continue
			}
			ms, err := s.st.ListMemberships(ctx, u.ID)
			if err != nil {
				continue
			}
			for _, m := range ms {
				if m.OrgID == per.OrgID && m.Role == store.RoleAdmin {
					link := ""
					if s.cfg.BaseURL != "" {
						link = strings.TrimRight(s.cfg.BaseURL, "/") + "/audit?action=break_glass"
					}
					if err := s.cfg.Mailer.SendLink(ctx, u.Email, "Vigil: emergency access used",
						fmt.Sprintf("User %s used emergency (break-glass) access to person %s in %s until %s UTC. The reason is in the audit log:",
							p.UserID, per.ID, per.OrgID, g.ExpiresAt.UTC().Format("2006-01-02 15:04")), link); err != nil {
						s.log.Warn("break-glass: admin mail not queued", "user_id", u.ID, "err", err)
					}
				}
			}
		}
	}
	return g, nil
}
