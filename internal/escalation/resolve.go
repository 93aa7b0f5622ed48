package escalation

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"vigil/internal/store"
)

// resolve turns recipients named by user, role, team, rota, contacts or
// carers into addresses, as the organisation stands now (a rota: whoever
// is on call now; nobody is a valid answer). A user who is disabled,
// not a member of the alert's organisation, or the alert's own person on a
// duress alert (whoever holds their phone must not learn of it) is left
// out; so is anyone the lookups fail for (logged): the other recipients
// are still told.
func (e *Engine) resolve(ctx context.Context, a store.Alert, rs []Recipient) []Recipient {
	out := make([]Recipient, 0, len(rs))
	for _, r := range rs {
		if !r.selector() {
			out = append(out, r)
			continue
		}
		got, err := e.expand(ctx, a, r)
		if err != nil {
			e.log.Error("escalation: recipients not resolved", "alert_id", a.ID, "err", err)
		}
		out = append(out, got...)
	}
	return out
}

func (e *Engine) expand(ctx context.Context, a store.Alert, r Recipient) ([]Recipient, error) {
	var out []Recipient
	addUser := func(u store.User) error {
		if !u.DisabledAt.IsZero() || (a.Duress && a.PersonID != "" && u.PersonID == a.PersonID) {
			return nil
		}
		ms, err := e.st.ListMemberships(ctx, u.ID)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(ms, func(m store.Membership) bool { return m.OrgID == a.OrgID }) {
			return nil
		}
		out = append(out, Recipient{Channel: ChannelEmail, Address: u.Email, Name: u.Name})
		return nil
	}
	switch {
	case r.User != "":
		u, err := e.st.GetUser(ctx, r.User)
		if err != nil {
			return nil, err
		}
		return out, addUser(u)
	case r.Team != "":
		t, err := e.st.GetTeam(ctx, r.Team)
		if err != nil {
			return nil, err
		}
		if t.OrgID != a.OrgID {
			return nil, nil
		}
		for _, id := range t.Members {
			u, err := e.st.GetUser(ctx, id)
			if err != nil {
				return out, err
			}
			if err := addUser(u); err != nil {
				return out, err
			}
		}
		return out, nil
	case r.Role != "" || r.Carers:
		us, err := e.st.ListUsers(ctx, a.OrgID)
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			ms, err := e.st.ListMemberships(ctx, u.ID)
			if err != nil {
				return out, err
			}
			want := store.Role(r.Role)
			if r.Carers {
				want = store.RoleCarer
			}
			if !slices.ContainsFunc(ms, func(m store.Membership) bool { return m.OrgID == a.OrgID && m.Role == want }) {
				continue
			}
			if r.Carers {
				people, err := e.st.ListCarerPeople(ctx, u.ID)
				if err != nil {
					return out, err
				}
				if a.PersonID == "" || !slices.Contains(people, a.PersonID) {
					continue
				}
			}
			if err := addUser(u); err != nil {
				return out, err
			}
		}
		return out, nil
	case r.Rota != "":
		rota, err := e.st.GetRota(ctx, a.OrgID, r.Rota)
		if err != nil {
			return nil, err
		}
		now := e.clk.Now()
		ids, err := OnCall(rota, now)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			// A gap in the rota is valid, and shown on the alert's
			// timeline: the ladder goes on (other recipients, the next
			// step, the end broadcast).
			if _, err := e.st.AddAlertEntry(ctx, a.ID, store.AlertEntry{At: now, Actor: "escalation", Action: "nobody_on_call",
				Detail: "nobody on call on rota " + r.Rota, Cause: fmt.Sprintf("rota:%s:%s:%d", a.ID, r.Rota, now.UnixNano())}); err != nil {
				return nil, err
			}
			return nil, nil
		}
		for _, id := range ids {
			u, err := e.st.GetUser(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue // removed since the rota was written
			}
			if err != nil {
				return out, err
			}
			if err := addUser(u); err != nil {
				return out, err
			}
		}
		return out, nil
	case r.Contacts:
		if a.PersonID == "" {
			return nil, nil
		}
		cs, err := e.st.ListContacts(ctx, a.PersonID)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			addr := c.Email
			if r.Channel == ChannelSMS {
				addr = c.Phone
			}
			if addr != "" {
				out = append(out, Recipient{Channel: r.Channel, Address: addr, Name: c.Name})
			}
		}
		return out, nil
	}
	return nil, nil
}
