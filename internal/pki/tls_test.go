package pki

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// serve runs a TLS server on loopback with cfg, writing one byte to each
// client after the handshake (so TLS 1.3 clients receive their session
// tickets), until the test ends.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, cfg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				_, _ = c.Write([]byte("x"))
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// dial handshakes with addr, reads the server's byte and reports the
// connection state.
func dial(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return tls.ConnectionState{}, err
	}
	return c.(*tls.Conn).ConnectionState(), nil
}

func testServer(t *testing.T) (addr string, client func() *tls.Config) {
	t.Helper()
	ca, dir := newCA(t)
	cert, err := ca.EnsureServerCert(dir, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	addr = serve(t, ServerConfig(cert))
	return addr, func() *tls.Config { return &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"} }
}

// TestServerConfigPolicy is security requirement 8 over a real loopback
// listener.
func TestServerConfigPolicy(t *testing.T) {
	addr, client := testServer(t)
	cbcSHA := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	}
	tests := []struct {
		name   string
		config func(*tls.Config)
		ok     bool
	}{
		{"TLS 1.0", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10 }, false},
		{"TLS 1.1 max", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }, false},
		{"TLS 1.2 CBC-SHA only", func(c *tls.Config) { c.MaxVersion, c.CipherSuites = tls.VersionTLS12, cbcSHA }, false},
		{"TLS 1.2 RSA key exchange only", func(c *tls.Config) {
			c.MaxVersion, c.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}
		}, false},
		{"TLS 1.2 P-384 only", func(c *tls.Config) {
			c.MaxVersion, c.CurvePreferences = tls.VersionTLS12, []tls.CurveID{tls.CurveP384}
		}, false},
		{"TLS 1.2 AEAD", func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, true},
		{"TLS 1.2 ChaCha20", func(c *tls.Config) {
			c.MaxVersion, c.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
		}, true},
		{"TLS 1.2 P-256", func(c *tls.Config) {
			c.MaxVersion, c.CurvePreferences = tls.VersionTLS12, []tls.CurveID{tls.CurveP256}
		}, true},
		{"TLS 1.3", func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }, true},
		{"TLS 1.3 X25519 only", func(c *tls.Config) { c.MinVersion, c.CurvePreferences = tls.VersionTLS13, []tls.CurveID{tls.X25519} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := client()
			tt.config(cfg)
			st, err := dial(addr, cfg)
			if !tt.ok {
				if err == nil {
					t.Fatalf("handshake succeeded with %s / %s, want failure", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if st.Version == tls.VersionTLS12 && !slices.Contains(ServerCipherSuites(), st.CipherSuite) {
				t.Errorf("negotiated %s, not an allowed suite", tls.CipherSuiteName(st.CipherSuite))
			}
		})
	}
}

func TestServerConfigSuitesAreAEADAndECDHE(t *testing.T) {
	secure := map[uint16]*tls.CipherSuite{}
	for _, s := range tls.CipherSuites() {
		secure[s.ID] = s
	}
	for _, id := range ServerCipherSuites() {
		s, ok := secure[id]
		if !ok {
			t.Errorf("%s is not in crypto/tls's secure list", tls.CipherSuiteName(id))
			continue
		}
		if !slices.Equal(s.SupportedVersions, []uint16{tls.VersionTLS12}) {
			t.Errorf("%s: versions %v", s.Name, s.SupportedVersions)
		}
	}
	cfg := ServerConfig(tls.Certificate{})
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x", cfg.MinVersion)
	}
}

func TestTicketRotatorRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewTicketRotator(ServerConfig(tls.Certificate{}))
		k0, _, _ := r.currentKeys()
		now := t0
		tick := make(chan time.Time)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { r.Run(ctx, func() time.Time { return now }, tick); close(done) }()

		synctest.Wait()
		k1, p1, at1 := r.currentKeys()
		if k1 == k0 || p1 != k0 || !at1.Equal(t0) {
			t.Fatalf("Run did not rotate at start: new=%v prev-is-old=%v at=%v", k1 != k0, p1 == k0, at1)
		}

		now = t0.Add(23 * time.Hour)
		tick <- now
		synctest.Wait()
		if k, _, _ := r.currentKeys(); k != k1 {
			t.Fatal("rotated before the key was a day old")
		}

		now = t0.Add(TicketKeyPeriod)
		tick <- now
		synctest.Wait()
		k2, p2, at2 := r.currentKeys()
		if k2 == k1 || p2 != k1 || !at2.Equal(now) {
			t.Fatalf("daily rotation: new=%v prev-is-old=%v at=%v", k2 != k1, p2 == k1, at2)
		}

		// After a suspend, one tick catches up with one rotation.
		now = now.Add(72 * time.Hour)
		tick <- now
		synctest.Wait()
		if k3, p3, _ := r.currentKeys(); k3 == k2 || p3 != k2 {
			t.Fatal("no rotation after a long gap")
		}

		cancel()
		<-done
	})
}

// TestTicketRotationResumption proves the rotation reaches a clone of the
// config (as http.Server.ServeTLS makes): a ticket resumes across one
// rotation and not across two.
func TestTicketRotationResumption(t *testing.T) {
	ca, dir := newCA(t)
	cert, err := ca.EnsureServerCert(dir, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig(cert)
	r := NewTicketRotator(cfg)
	addr := serve(t, cfg.Clone())

	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			client := &tls.Config{
				RootCAs: ca.Pool(), ServerName: "localhost",
				MinVersion: version, MaxVersion: version,
				ClientSessionCache: tls.NewLRUClientSessionCache(4),
			}
			connect := func() bool {
				t.Helper()
				st, err := dial(addr, client)
				if err != nil {
					t.Fatal(err)
				}
				return st.DidResume
			}
			if connect() {
				t.Fatal("first connection resumed")
			}
			if !connect() {
				t.Fatal("second connection did not resume")
			}
			r.Rotate(time.Now())
			if !connect() {
				t.Fatal("did not resume across one rotation (previous key dropped too early)")
			}
			r.Rotate(time.Now())
			r.Rotate(time.Now())
			if connect() {
				t.Fatal("resumed with a ticket whose key was rotated out")
			}
			if !connect() {
				t.Fatal("did not resume with a ticket from the current key")
			}
		})
	}
}
