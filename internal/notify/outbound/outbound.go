// Package outbound makes the *http.Client that every outbound call of the
// notification channels goes through (webhooks, the SMS provider), so that
// a URL an administrator (or an attacker) typed cannot reach the inside of
// the network: server-side request forgery (security requirement 28).
//
// The policy is enforced in the dialer's Control hook, on the IP address
// actually being connected to after DNS resolution, so a name that resolves
// (or re-resolves: DNS rebinding) to a denied address is refused however it
// was reached. By default it refuses loopback, private (RFC 1918, ULA
// fc00::/7), link-local (169.254.0.0/16 including the 169.254.169.254 cloud
// metadata address, fe80::/10), shared/CGNAT (100.64.0.0/10), unspecified,
// multicast, broadcast, documentation, benchmarking, reserved and
// translation ranges, also in their IPv4-mapped IPv6 forms. Config.Allow
// lets chosen prefixes through (a receiver on a private network, or
// 127.0.0.2 in tests); Config.Hosts optionally restricts which host names
// may be called at all.
//
// Redirects are never followed: a 3xx is an error (ErrRedirect), so a
// public receiver cannot bounce a request into a denied range. No proxy is
// used (a proxy would make the dialled address the proxy's). TLS is 1.2 or
// later, and every phase has a timeout.
//
// Errors from the client name the operation and the reason; use
// RedactError on an error from Client.Do before wrapping or logging it, so
// the URL's user info, path and query (where webhook tokens live) never
// reach an error or a log line.
//
// It imports only the standard library; it must not import store, bus,
// safety or app. A client from New is safe for concurrent use and holds no
// goroutines of its own beyond net/http's idle connections
// (CloseIdleConnections releases them).
package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrRefused: the destination is not permitted by the policy (a denied
	// address range, or a host not in Config.Hosts).
	ErrRefused = errors.New("outbound: refused by policy")
	// ErrRedirect: the server answered with a redirect, which is never
	// followed. errors.Is(err, ErrRefused) also holds.
	ErrRedirect = fmt.Errorf("%w: redirect not followed", ErrRefused)
	// ErrTooLarge: the response body exceeded Config.MaxResponseBytes.
	ErrTooLarge = errors.New("outbound: response body too large")
)

// RefusedError is the error a refused dial carries. It matches ErrRefused
// with errors.Is. It names the address or host and the reason, never the
// URL.
type RefusedError struct {
	Addr   netip.Addr // the address refused, if the refusal was by address
	Host   string     // the host name refused, if the refusal was by name
	Reason string     // "loopback", "private", "link-local", "host not allowed", …
}

func (e *RefusedError) Error() string {
	what := e.Host
	if e.Addr.IsValid() {
		what = e.Addr.String()
	}
	return fmt.Sprintf("outbound: refused by policy: %s (%s)", what, e.Reason)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Config tunes the client. The zero value is the strict default policy with
// the default timeouts.
type Config struct {
	// Hosts, if not empty, is the only host names that may be called: an
	// exact name ("hooks.example.org") or a wildcard for its subdomains
	// ("*.example.org", which does not match the apex). An IP literal in a
	// URL matches only an identical entry. The address a name resolves to
	// is still checked against the range policy.
	Hosts []string
	// Allow lets these prefixes through although the default policy denies
	// them (an operator's receiver on a private network; 127.0.0.2/32 in
	// tests). Only the listed prefixes: allowing 127.0.0.2/32 still refuses
	// 127.0.0.1.
	Allow []netip.Prefix
	// LookupNetIP, if set, resolves host names instead of the system
	// resolver (tests use it to fake DNS). The resolved addresses are
	// dialled one by one, each checked in the dialer like any other.
	LookupNetIP func(ctx context.Context, network, host string) ([]netip.Addr, error)
	// RootCAs, if set, replaces the system roots (tests with a TLS server).
	RootCAs *x509.CertPool

	Timeout               time.Duration // whole request including the body; default 30s
	DialTimeout           time.Duration // TCP connect; default 5s
	TLSHandshakeTimeout   time.Duration // default 5s
	ResponseHeaderTimeout time.Duration // from request written to headers read; default 15s
	MaxResponseBytes      int64         // bytes of a response body that may be read; default 1 MiB
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.TLSHandshakeTimeout <= 0 {
		c.TLSHandshakeTimeout = 5 * time.Second
	}
	if c.ResponseHeaderTimeout <= 0 {
		c.ResponseHeaderTimeout = 15 * time.Second
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 1 << 20
	}
	return c
}

// validate checks the allowlists.
func (c Config) validate() error {
	for _, p := range c.Allow {
		if !p.IsValid() {
			return fmt.Errorf("outbound: config: invalid allow prefix %q", p.String())
		}
	}
	for _, h := range c.Hosts {
		name := strings.TrimPrefix(h, "*.")
		if name == "" || strings.ContainsAny(name, ":/@?#*[] ") && !isIPLiteral(name) {
			return fmt.Errorf("outbound: config: invalid host %q: want a name, *.name or an IP address", h)
		}
	}
	return nil
}

func isIPLiteral(s string) bool {
	_, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return err == nil
}

// New returns a client that enforces the policy of cfg. It returns an
// error only for an invalid Config.
func New(cfg Config) (*http.Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &guard{cfg: cfg}
	g.dialer = &net.Dialer{
		Timeout:        cfg.DialTimeout,
		KeepAlive:      30 * time.Second,
		ControlContext: g.control,
	}
	tr := &http.Transport{
		Proxy:                  nil, // never: the policy must see the real destination
		DialContext:            g.dialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs},
		TLSHandshakeTimeout:    cfg.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           32,
		MaxIdleConnsPerHost:    4,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{
		Transport: &limitTransport{rt: tr, max: cfg.MaxResponseBytes},
		Timeout:   cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return ErrRedirect
		},
	}, nil
}

// CheckAddr reports whether cfg permits connecting to a: nil, or a
// *RefusedError. Useful to validate a URL with an IP literal when it is
// configured; the dialer applies the same check to every connection.
func (c Config) CheckAddr(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	for _, p := range c.Allow {
		if p.Contains(a) {
			return nil
		}
	}
	if reason := deniedReason(a); reason != "" {
		return &RefusedError{Addr: a, Reason: reason}
	}
	return nil
}

// checkHost applies Config.Hosts to a URL's host.
func (c Config) checkHost(host string) error {
	if len(c.Hosts) == 0 {
		return nil
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, e := range c.Hosts {
		e = strings.ToLower(strings.TrimSuffix(strings.Trim(e, "[]"), "."))
		if suffix, ok := strings.CutPrefix(e, "*."); ok {
			if strings.HasSuffix(h, "."+suffix) {
				return nil
			}
			continue
		}
		if h == e {
			return nil
		}
	}
	return &RefusedError{Host: h, Reason: "host not allowed"}
}

type guard struct {
	cfg    Config
	dialer *net.Dialer
}

// control runs on every socket before connect, with the numeric address
// actually dialled.
func (g *guard) control(_ context.Context, network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return &RefusedError{Host: address, Reason: "network " + network + " not allowed"}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Host: address, Reason: "unparsable address"}
	}
	return g.cfg.CheckAddr(ap.Addr())
}

func (g *guard) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("outbound: dial: %w", err)
	}
	if err := g.cfg.checkHost(host); err != nil {
		return nil, err
	}
	if g.cfg.LookupNetIP == nil || isIPLiteral(host) {
		return g.dialer.DialContext(ctx, network, addr)
	}
	ipNet := "ip"
	switch network {
	case "tcp4":
		ipNet = "ip4"
	case "tcp6":
		ipNet = "ip6"
	}
	addrs, err := g.cfg.LookupNetIP(ctx, ipNet, host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: err.Error(), Name: host}}
	}
	if len(addrs) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}
	var first error
	for _, a := range addrs {
		c, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(a.Unmap().WithZone("").String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// deniedReason names the denied range a falls in, or "" if it is allowed
// by default. a must be unmapped.
func deniedReason(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast():
		if a == metadataV4 {
			return "metadata"
		}
		return "link-local"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, d := range denied {
		if d.p.Contains(a) {
			return d.reason
		}
	}
	return ""
}

var metadataV4 = netip.MustParseAddr("169.254.169.254")

type deniedPrefix struct {
	p      netip.Prefix
	reason string
}

// denied are the ranges netip's predicates do not cover. It is read-only.
var denied = func() []deniedPrefix {
	list := []struct{ p, reason string }{
		{"0.0.0.0/8", "this-network"},
		{"100.64.0.0/10", "shared (CGNAT)"},
		{"192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.2.0/24", "documentation"},
		{"192.88.99.0/24", "6to4 relay"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"240.0.0.0/4", "reserved"}, // includes 255.255.255.255
		{"::/96", "IPv4-compatible"},
		{"64:ff9b::/96", "NAT64"},
		{"64:ff9b:1::/48", "NAT64"},
		{"100::/64", "discard"},
		{"2001::/23", "IETF protocol assignments"}, // includes Teredo 2001::/32
		{"2001:db8::/32", "documentation"},
		{"2002::/16", "6to4"},
		{"3fff::/20", "documentation"},
		{"5f00::/16", "segment routing"},
		{"fec0::/10", "site-local"},
	}
	out := make([]deniedPrefix, len(list))
	for i, d := range list {
		out[i] = deniedPrefix{netip.MustParsePrefix(d.p), d.reason}
	}
	return out
}()

// limitTransport caps response bodies.
type limitTransport struct {
	rt  http.RoundTripper
	max int64
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport.
func (t *limitTransport) CloseIdleConnections() {
	if c, ok := t.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly max bytes from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// RedactURL returns raw without user info, query and fragment (the scheme,
// host and path remain), or "[invalid url]" if it does not parse. For
// recording a delivery target; error text should use only the host.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[invalid url]"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}

// RedactError returns err with the URL of a top-level *url.Error (what
// http.Client.Do returns) reduced to its scheme and host, so user info,
// path and query never reach an error text. The chain below is kept, so
// errors.Is and errors.As still work.
func RedactError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	red := "[invalid url]"
	if u, perr := url.Parse(ue.URL); perr == nil {
		red = (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
	}
	if e, ok := err.(*url.Error); ok {
		return &url.Error{Op: e.Op, URL: red, Err: e.Err}
	}
	// A *url.Error deeper in a chain: keep the chain but not its text.
	return &url.Error{Op: ue.Op, URL: red, Err: ue.Err}
}

// Classify names the class of an error from a client of this package, for
// records and metrics: "refused", "redirect", "too_large", "canceled",
// "timeout", "tls", "dns", "network", or "error"; "" for nil.
func Classify(err error) string {
	var (
		dnsErr  *net.DNSError
		opErr   *net.OpError
		netErr  net.Error
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		unkAuth x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
	)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrRedirect):
		return "redirect"
	case errors.Is(err, ErrRefused):
		return "refused"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &alert),
		errors.As(err, &unkAuth), errors.As(err, &hostErr), errors.As(err, &invErr):
		return "tls"
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.As(err, &opErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return "network"
	}
	return "error"
}

// Backoff is the retry schedule of the channels: exponential with full
// jitter (a uniform random delay between 0 and min(Max, Base·2^retry)), so
// many deliveries failing together do not retry in lockstep. The zero value
// is Base 1s, Max 30s, uniform jitter.
type Backoff struct {
	Base, Max time.Duration
	// Jitter returns a duration in [0, max]; nil is uniform random. Tests
	// pass the identity to get the exponential ceiling itself.
	Jitter func(max time.Duration) time.Duration
}

// Delay returns the wait before retry number retry (0 for the wait after
// the first attempt).
func (b Backoff) Delay(retry int) time.Duration {
	base, ceil := b.Base, b.Max
	if base <= 0 {
		base = time.Second
	}
	if ceil <= 0 {
		ceil = 30 * time.Second
	}
	retry = max(retry, 0)
	d := ceil
	if retry < 62 && base <= ceil>>min(retry, 62) {
		d = base << retry
	}
	if b.Jitter != nil {
		return min(max(b.Jitter(d), 0), d)
	}
	return rand.N(d + 1)
}

// RetryableStatus reports whether an HTTP status is worth retrying: 408,
// 429 and 5xx. Any other status from 300 up is a permanent failure.
func RetryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// RetryAfter returns the wait a 429 or 503 response asks for in its
// Retry-After header (delta seconds or an HTTP date, relative to now), or
// 0 if there is none or it does not parse.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
