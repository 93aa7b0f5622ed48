package email

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"strings"

	gomail "github.com/wneessen/go-mail"

	"vigil/internal/notify"
)

// ReplyError is an SMTP reply that refused a step of the delivery. It
// keeps the reply code and the enhanced status code and drops the
// server's text, which may echo the recipient's address or a credential.
type ReplyError struct {
	Op       string // "connect", "auth", "mail from", "rcpt to", "data", "send"
	Code     int    // e.g. 550
	Enhanced string // e.g. "5.1.1"; "" when the server gave none
}

func (e *ReplyError) Error() string {
	if e.Enhanced != "" {
		return fmt.Sprintf("%s: smtp reply %d (%s)", e.Op, e.Code, e.Enhanced)
	}
	return fmt.Sprintf("%s: smtp reply %d", e.Op, e.Code)
}

// Temporary reports whether the reply is a 4xx (try again later).
func (e *ReplyError) Temporary() bool { return e.Code < 500 }

// ErrNoReply is wrapped when the connection failed in the middle of a step,
// before the server replied.
var ErrNoReply = errors.New("email: connection failed without an SMTP reply")

// errWithheld replaces an error whose text contained a secret or the
// recipient's address.
var errWithheld = errors.New("error text withheld: it contained a credential or an address")

// secrets are strings that must never appear in an error.
type secrets []string

// reply makes a ReplyError, Permanent for a 5xx.
func reply(op string, code int, enhanced string) error {
	e := &ReplyError{Op: op, Code: code, Enhanced: enhanced}
	if code >= 500 {
		return notify.Permanent(e)
	}
	return e
}

var enhancedRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}\b`)

// classifyDial maps an error from connecting, EHLO, STARTTLS or AUTH.
func classifyDial(err error, authBegan bool, sec secrets) error {
	op := "connect"
	if authBegan {
		op = "auth"
	}
	if te := (*textproto.Error)(nil); errors.As(err, &te) {
		return reply(op, te.Code, enhancedRE.FindString(strings.TrimSpace(te.Msg)))
	}
	if strings.Contains(err.Error(), "does not support STARTTLS") {
		return ErrNoStartTLS
	}
	if isTLSError(err) {
		op = "tls"
	}
	return fmt.Errorf("%s: %w", op, redact(err, sec))
}

// classifySend maps an error from MAIL FROM, RCPT TO or DATA.
func classifySend(err error, sec secrets) error {
	se := (*gomail.SendError)(nil)
	if !errors.As(err, &se) {
		return fmt.Errorf("send: %w", redact(err, sec))
	}
	op := "send"
	switch se.Reason {
	case gomail.ErrSMTPMailFrom:
		op = "mail from"
	case gomail.ErrSMTPRcptTo:
		op = "rcpt to"
	case gomail.ErrSMTPData, gomail.ErrSMTPDataClose, gomail.ErrWriteContent:
		op = "data"
	case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
		// Our own message was refused before any command: fixing it
		// takes a code or config change, not a retry.
		return notify.Permanent(fmt.Errorf("compose: %s", se.Reason.String()))
	}
	// SendError.Error names the recipients and keeps the reply text: use
	// only the code, which go-mail parsed from the reply.
	if code := se.ErrorCode(); code >= 400 && code < 600 {
		return reply(op, code, se.EnhancedStatusCode())
	}
	return fmt.Errorf("%s: %w", op, ErrNoReply)
}

func isTLSError(err error) bool {
	var (
		cv  *tls.CertificateVerificationError
		rh  tls.RecordHeaderError
		al  tls.AlertError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		ech *tls.ECHRejectionError
	)
	return errors.As(err, &cv) || errors.As(err, &rh) || errors.As(err, &al) ||
		errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &ech) ||
		strings.HasPrefix(err.Error(), "tls: ")
}

// redact returns err unless its text contains one of sec, else a
// replacement that keeps nothing of it (not even the chain).
func redact(err error, sec secrets) error {
	text := err.Error()
	for _, s := range sec {
		if s != "" && strings.Contains(strings.ToLower(text), strings.ToLower(s)) {
			return errWithheld
		}
	}
	return err
}
