package auth

import (
	"context"
	"time"

	"vigil/internal/audit"
)

// throttled records a refused (throttled) sign-in: one audit entry per
// account and source a minute, not one per guess (a flood must not grow
// the log without bound), and at most one mail an hour to the account's
// owner, so they learn someone is guessing their password.
func (s *Service) throttled(ctx context.Context, acct, ip string) {
	now := s.clk.Now()
	if s.rateOK("audit\x00"+acct+"\x00"+ip, now, time.Minute) {
		_ = s.record(ctx, audit.Entry{Actor: "anonymous", SourceIP: ip, Action: "login", Outcome: "denied", Severity: "warning",
			Details: map[string]string{"reason": "throttled", "account": pseudonym(s.cfg.DeviceKey, acct)}})
	}
	if s.cfg.Mailer == nil || !s.rateOK("mail\x00"+acct, now, time.Hour) {
		return
	}
	u, err := s.st.GetUserByEmail(ctx, acct)
	if err != nil || !u.DisabledAt.IsZero() {
		return
	}
	if err := s.cfg.Mailer.SendLink(ctx, u.Email, "Vigil: many failed sign-ins to your account",
		"Someone has been trying wrong passwords for your Vigil account and is being slowed down. If it was not you, "+
			"no action is needed: your account is not locked, and a password alone does not sign in. "+
			"If you are worried, change your password after signing in:", s.link("/account", "")); err != nil {
		s.log.Warn("throttle notice not queued", "user_id", u.ID, "err", err)
	}
	_ = s.record(ctx, audit.Entry{Actor: "system", Action: "login.throttle_notice", ObjectType: "user", ObjectID: u.ID,
		Outcome: "ok", Severity: "warning"})
}

// rateOK reports whether key may act now, at most once per every; the
// table is bounded (cleared when it grows past 10,000 keys).
func (s *Service) rateOK(key string, now time.Time, every time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil || len(s.last) > 10000 {
		s.last = make(map[string]time.Time)
	}
	if t, ok := s.last[key]; ok && now.Sub(t) < every {
		return false
	}
	s.last[key] = now
	return true
}
