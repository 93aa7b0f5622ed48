package escalation

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Links makes and checks what lets a recipient acknowledge an alert
// without an account: a signed link (…/ack/<token>) in e-mail, SMS and
// webhooks, and a short code to reply to an SMS with ("ACK 4F7Q2K").
// Both are bound to one alert and one recipient and signed with a key
// only the server holds; a link expires after its TTL. A link is usable
// until the alert is acknowledged (the acknowledgement is the one-time
// part: a second one is refused by the lifecycle).
type Links struct {
	key  []byte
	base string // the public base URL, from configuration only
	ttl  time.Duration
}

// ErrBadLink is a token that is malformed, forged or expired.
var ErrBadLink = errors.New("acknowledge link is invalid or has expired")

// NewLinks returns Links signing with key (at least 32 bytes) and
// building URLs under base ("" builds no links, codes still work).
func NewLinks(key []byte, base string, ttl time.Duration) (*Links, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("acknowledge links: key of %d bytes, want at least 32", len(key))
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	return &Links{key: key, base: strings.TrimRight(base, "/"), ttl: ttl}, nil
}

// token layout: version (1) · expiry unix seconds (8) · recipient hash (8) ·
// alert id, then a 16-byte HMAC over all of it.
const tokenVersion = 1

func recipientHash(recipient string) []byte {
	h := sha256.Sum256([]byte(recipient))
	return h[:8]
}

func (l *Links) mac(b []byte) []byte {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte("vigil ack link\x00"))
	m.Write(b)
	return m.Sum(nil)[:16]
}

// Token returns a signed token for recipient to acknowledge alertID,
// valid until now+TTL.
func (l *Links) Token(alertID, recipient string, now time.Time) string {
	b := make([]byte, 0, 17+len(alertID)+16)
	b = append(b, tokenVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(now.Add(l.ttl).Unix()))
	b = append(b, recipientHash(recipient)...)
	b = append(b, alertID...)
	b = append(b, l.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// URL is the acknowledge link for a token, "" without a base URL.
func (l *Links) URL(token string) string {
	if l.base == "" {
		return ""
	}
	return l.base + "/ack/" + url.PathEscape(token)
}

// Verify checks a token and returns the alert it acknowledges and the
// hash of the recipient it was made for (hex, for the timeline).
func (l *Links) Verify(token string, now time.Time) (alertID, recipient string, err error) {
	if len(token) > 512 {
		return "", "", ErrBadLink
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 1+8+8+1+16 || b[0] != tokenVersion {
		return "", "", ErrBadLink
	}
	body, sig := b[:len(b)-16], b[len(b)-16:]
	if !hmac.Equal(sig, l.mac(body)) {
		return "", "", ErrBadLink
	}
	if exp := int64(binary.BigEndian.Uint64(body[1:9])); now.Unix() > exp {
		return "", "", ErrBadLink
	}
	return string(body[17:]), hex.EncodeToString(body[9:17]), nil
}

// replyAlphabet has no 0/O or 1/I, for codes read off a phone screen.
const replyAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

// ReplyCode is the code recipient replies with to acknowledge alertID by
// SMS: six characters from the signed hash of both.
func (l *Links) ReplyCode(alertID, recipient string) string {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte("vigil ack reply\x00"))
	m.Write([]byte(alertID))
	m.Write([]byte{0})
	m.Write([]byte(recipient))
	sum := m.Sum(nil)
	code := make([]byte, 6)
	for i := range code {
		code[i] = replyAlphabet[sum[i]%byte(len(replyAlphabet))]
	}
	return string(code)
}
