package email

import (
	"context"
	"fmt"
	"net/mail"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// SendText sends a plain-text account message (an invitation, a password
// reset) to one address through the same server and TLS rules as alerts.
// The body may carry a link with a secret: it is never logged.
func (n *Notifier) SendText(ctx context.Context, to, subject, body string) error {
	rcpt, err := mail.ParseAddress(strings.TrimSpace(to))
	if err != nil || strings.ContainsAny(rcpt.Address, "\r\n") {
		return fmt.Errorf("email: send text: %w", ErrAddress)
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(n.from)
	msg.ToMailAddress(&mail.Address{Address: rcpt.Address})
	msg.Subject(oneLine(subject, 120))
	msg.SetDateWithValue(n.clk.Now())
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetUserAgent("Vigil")
	msg.SetBodyString(gomail.TypeTextPlain, body)
	if err := n.send(ctx, msg, secrets{n.cfg.Password.Reveal(), rcpt.Address, ""}); err != nil {
		return fmt.Errorf("email: send text: %w", err)
	}
	return nil
}
