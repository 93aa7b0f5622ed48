package outbound_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/notify/outbound"
)

// serveOn starts an httptest server bound to ip (Linux routes all of
// 127.0.0.0/8 to lo).
func serveOn(t *testing.T, ip string, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		if os.Getenv("CI") != "" { // CI runs on Linux: these tests must run there
			t.Fatalf("cannot listen on %s (needs a Linux-style 127.0.0.0/8 loopback): %v", ip, err)
		}
		t.Skipf("cannot listen on %s (needs a Linux-style 127.0.0.0/8 loopback): %v", ip, err)
	}
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = ln
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func newClient(t *testing.T, cfg outbound.Config) *http.Client {
	t.Helper()
	c, err := outbound.New(cfg)
	if err != nil {
		t.Fatalf("outbound.New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// hit records whether a handler ran: a refused dial must not reach it.
func hit(n *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.WriteString(w, "ok")
	})
}

func get(ctx context.Context, c *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	return resp, outbound.RedactError(err)
}

func wantRefused(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("request succeeded, want refused by policy")
	}
	if !errors.Is(err, outbound.ErrRefused) {
		t.Fatalf("err = %v, want errors.Is ErrRefused", err)
	}
	if !strings.Contains(err.Error(), "refused by policy") {
		t.Errorf("err = %q, want it to say refused by policy", err)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("err = %q echoes %q", err, s)
		}
	}
	if got := outbound.Classify(err); got != "refused" && got != "redirect" {
		t.Errorf("Classify = %q, want refused or redirect", got)
	}
}

func TestLoopbackRefusedByDefault(t *testing.T) {
	var n atomic.Int32
	s := serveOn(t, "127.0.0.1", hit(&n))
	c := newClient(t, outbound.Config{})
	u := strings.Replace(s.URL, "http://", "http://admin:hunter2-canary@", 1) + "/x?token=q-canary"
	_, err := get(t.Context(), c, u)
	wantRefused(t, err, "hunter2-canary", "q-canary", "/x")
	if n.Load() != 0 {
		t.Errorf("server was reached %d times", n.Load())
	}
}

func TestAllowOverrideIsExact(t *testing.T) {
	var n1, n2 atomic.Int32
	s1 := serveOn(t, "127.0.0.1", hit(&n1))
	s2 := serveOn(t, "127.0.0.2", hit(&n2))
	c := newClient(t, outbound.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})

	resp, err := get(t.Context(), c, s2.URL+"/")
	if err != nil {
		t.Fatalf("GET 127.0.0.2: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("GET 127.0.0.2 = %d %q, want 200 ok", resp.StatusCode, body)
	}

	_, err = get(t.Context(), c, s1.URL+"/")
	wantRefused(t, err)
	if n1.Load() != 0 || n2.Load() != 1 {
		t.Errorf("hits 127.0.0.1=%d 127.0.0.2=%d, want 0 and 1", n1.Load(), n2.Load())
	}
}

// A name that resolves to a denied address is refused in the dialer, also
// when it resolves to a mix (rebinding) or to an IPv4-mapped form.
func TestHostnameResolvingToLoopbackRefused(t *testing.T) {
	var n atomic.Int32
	s := serveOn(t, "127.0.0.1", hit(&n))
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	for _, tc := range []struct {
		name  string
		addrs []string
	}{
		{"loopback", []string{"127.0.0.1"}},
		{"mapped", []string{"::ffff:127.0.0.1"}},
		{"metadata then loopback", []string{"169.254.169.254", "127.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lookups atomic.Int32
			c := newClient(t, outbound.Config{
				LookupNetIP: func(_ context.Context, _, host string) ([]netip.Addr, error) {
					lookups.Add(1)
					if host != "hooks.example.test" {
						return nil, errors.New("no such host")
					}
					var out []netip.Addr
					for _, a := range tc.addrs {
						out = append(out, netip.MustParseAddr(a))
					}
					return out, nil
				},
			})
			_, err := get(t.Context(), c, "http://hooks.example.test:"+port+"/")
			wantRefused(t, err)
			if lookups.Load() == 0 {
				t.Error("the lookup hook was not used")
			}
		})
	}
	if n.Load() != 0 {
		t.Errorf("server was reached %d times", n.Load())
	}
}

// The system resolver path: "localhost" resolves to loopback and the
// Control hook refuses it.
func TestLocalhostRefused(t *testing.T) {
	var n atomic.Int32
	s := serveOn(t, "127.0.0.1", hit(&n))
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	c := newClient(t, outbound.Config{})
	_, err := get(t.Context(), c, "http://localhost:"+port+"/")
	wantRefused(t, err)
	if n.Load() != 0 {
		t.Errorf("server was reached %d times", n.Load())
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var n atomic.Int32
	inner := serveOn(t, "127.0.0.1", hit(&n))
	outer := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inner.URL+"/admin?key=redirect-canary", http.StatusFound)
	}))
	c := newClient(t, outbound.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	_, err := get(t.Context(), c, outer.URL+"/")
	wantRefused(t, err, "redirect-canary", "/admin")
	if !errors.Is(err, outbound.ErrRedirect) {
		t.Errorf("err = %v, want ErrRedirect", err)
	}
	if n.Load() != 0 {
		t.Errorf("redirect target was reached %d times", n.Load())
	}
}

func TestHostsAllowlist(t *testing.T) {
	s := serveOn(t, "127.0.0.2", hit(new(atomic.Int32)))
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	cfg := outbound.Config{
		Hosts: []string{"hooks.example.test", "*.partner.test"},
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		LookupNetIP: func(context.Context, string, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
		},
	}
	c := newClient(t, cfg)
	for host, ok := range map[string]bool{
		"hooks.example.test": true,
		"HOOKS.example.test": true,
		"a.partner.test":     true,
		"partner.test":       false,
		"evil.test":          false,
		"127.0.0.2":          false,
	} {
		resp, err := get(t.Context(), c, "http://"+host+":"+port+"/")
		if ok {
			if err != nil {
				t.Errorf("%s: %v, want allowed", host, err)
				continue
			}
			resp.Body.Close()
			continue
		}
		if !errors.Is(err, outbound.ErrRefused) {
			t.Errorf("%s: err = %v, want refused", host, err)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	var cfg outbound.Config
	for _, a := range []string{
		"127.0.0.1", "127.0.0.2", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "169.254.1.1", "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3",
		"224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "198.18.0.1",
		"::", "::1", "fc00::1", "fd12:3456::1", "fe80::1", "fe80::1%eth0", "ff02::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
		"64:ff9b::a00:1", "2002:7f00:1::1", "2001::1", "2001:db8::1", "fec0::1",
	} {
		if err := cfg.CheckAddr(netip.MustParseAddr(a)); !errors.Is(err, outbound.ErrRefused) {
			t.Errorf("CheckAddr(%s) = %v, want refused", a, err)
		}
	}
	for _, a := range []string{"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.32.0.1", "2606:4700::1111", "2a00:1450::1", "::ffff:8.8.8.8"} {
		if err := cfg.CheckAddr(netip.MustParseAddr(a)); err != nil {
			t.Errorf("CheckAddr(%s) = %v, want allowed", a, err)
		}
	}
	var re *outbound.RefusedError
	if err := cfg.CheckAddr(netip.MustParseAddr("169.254.169.254")); !errors.As(err, &re) || re.Reason != "metadata" {
		t.Errorf("metadata address: %v, want reason metadata", err)
	}
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}
	if err := cfg.CheckAddr(netip.MustParseAddr("10.20.1.1")); err != nil {
		t.Errorf("allowed private prefix: %v", err)
	}
	if err := cfg.CheckAddr(netip.MustParseAddr("::ffff:10.20.1.1")); err != nil {
		t.Errorf("allowed private prefix, mapped form: %v", err)
	}
	if err := cfg.CheckAddr(netip.MustParseAddr("10.21.1.1")); err == nil {
		t.Error("10.21.1.1 allowed by 10.20.0.0/16")
	}
}

func TestInvalidConfig(t *testing.T) {
	for _, cfg := range []outbound.Config{
		{Allow: []netip.Prefix{{}}},
		{Hosts: []string{""}},
		{Hosts: []string{"http://x"}},
		{Hosts: []string{"a/b"}},
	} {
		if _, err := outbound.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want error", cfg)
		}
	}
}

func TestResponseBodyCapped(t *testing.T) {
	s := serveOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 2000)))
	}))
	c := newClient(t, outbound.Config{
		Allow:            []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		MaxResponseBytes: 1000,
	})
	resp, err := get(t.Context(), c, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, outbound.ErrTooLarge) || len(b) != 1000 {
		t.Errorf("read %d bytes, err %v; want 1000 and ErrTooLarge", len(b), err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p@hooks.example.org/a/b?token=x#frag": "https://hooks.example.org/a/b",
		"http://127.0.0.2:8080/":                         "http://127.0.0.2:8080/",
		"://bad":                                         "[invalid url]",
	} {
		if got := outbound.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	for err, want := range map[error]string{
		nil:                                 "",
		outbound.ErrRedirect:                "redirect",
		&outbound.RefusedError{Reason: "x"}: "refused",
		context.DeadlineExceeded:            "timeout",
		context.Canceled:                    "canceled",
		io.ErrUnexpectedEOF:                 "network",
		&net.DNSError{Err: "no such host"}:  "dns",
		errors.New("other"):                 "error",
	} {
		if got := outbound.Classify(err); got != want {
			t.Errorf("Classify(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	id := func(d time.Duration) time.Duration { return d }
	b := outbound.Backoff{Base: time.Second, Max: 10 * time.Second, Jitter: id}
	var got []time.Duration
	for i := -1; i < 6; i++ {
		got = append(got, b.Delay(i))
	}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
	if d := b.Delay(1000); d != 10*time.Second {
		t.Errorf("Delay(1000) = %v, want the ceiling (no overflow)", d)
	}
	// Jitter is clamped to [0, ceiling].
	wild := outbound.Backoff{Base: time.Second, Max: 4 * time.Second, Jitter: func(time.Duration) time.Duration { return time.Hour }}
	if d := wild.Delay(0); d != time.Second {
		t.Errorf("over-long jitter: %v, want 1s", d)
	}
	wild.Jitter = func(time.Duration) time.Duration { return -time.Hour }
	if d := wild.Delay(0); d != 0 {
		t.Errorf("negative jitter: %v, want 0", d)
	}
	// Default jitter: full, within [0, ceiling].
	var zero outbound.Backoff
	for range 100 {
		if d := zero.Delay(3); d < 0 || d > 8*time.Second {
			t.Fatalf("Delay(3) = %v, want within [0, 8s]", d)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		" 120 ":                         2 * time.Minute,
		"-1":                            0,
		"soon":                          0,
		"Sun, 01 Mar 2026 14:00:30 GMT": 30 * time.Second,
		"Sun, 01 Mar 2026 13:00:00 GMT": 0,
	} {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		if got := outbound.RetryAfter(h, now); got != want {
			t.Errorf("RetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestRetryableStatus(t *testing.T) {
	for code, want := range map[int]bool{408: true, 429: true, 500: true, 502: true, 503: true, 400: false, 401: false, 404: false, 409: false, 302: false} {
		if got := outbound.RetryableStatus(code); got != want {
			t.Errorf("RetryableStatus(%d) = %v, want %v", code, got, want)
		}
	}
}

// TLS below 1.2 is refused; 1.2+ with the configured roots works. The
// httptest certificate names example.com, resolved here to 127.0.0.2.
func TestTLSMinimumVersion(t *testing.T) {
	for _, tc := range []struct {
		max uint16
		ok  bool
	}{{tls.VersionTLS11, false}, {tls.VersionTLS12, true}, {tls.VersionTLS13, true}} {
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			if os.Getenv("CI") != "" { // CI runs on Linux: these tests must run there
				t.Fatalf("cannot listen on 127.0.0.2: %v", err)
			}
			t.Skipf("cannot listen on 127.0.0.2: %v", err)
		}
		s := httptest.NewUnstartedServer(hit(new(atomic.Int32)))
		s.Listener.Close()
		s.Listener = ln
		s.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tc.max}
		s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
		s.StartTLS()
		t.Cleanup(s.Close)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		roots := x509.NewCertPool()
		roots.AddCert(s.Certificate())
		c := newClient(t, outbound.Config{
			Allow:   []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
			RootCAs: roots,
			LookupNetIP: func(context.Context, string, string) ([]netip.Addr, error) {
				return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
			},
		})
		resp, err := get(t.Context(), c, "https://example.com:"+port+"/")
		if tc.ok {
			if err != nil {
				t.Errorf("TLS max %x: %v, want success", tc.max, err)
				continue
			}
			resp.Body.Close()
			continue
		}
		if err == nil {
			resp.Body.Close()
			t.Errorf("TLS max %x: succeeded, want the handshake refused", tc.max)
		}
	}
}
