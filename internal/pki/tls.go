package pki

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"sync"
	"time"
)

// ServerCipherSuites are the TLS 1.2 suites a server accepts (security
// requirement 8): ECDHE key exchange with AEAD ciphers only. No RSA key
// exchange, no CBC, no SHA-1 MACs. TLS 1.3 suites are not configurable and
// all AEAD.
var serverCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerCipherSuites returns the TLS 1.2 cipher suites ServerConfig allows.
func ServerCipherSuites() []uint16 { return append([]uint16(nil), serverCipherSuites...) }

// ServerConfig is the TLS configuration of every Vigil listener: TLS 1.2
// or later, the AEAD+ECDHE suites above for TLS 1.2, key exchange with
// the hybrid post-quantum X25519MLKEM768/SecP256r1MLKEM768 (TLS 1.3 clients
// that offer them), X25519 or P-256.
//
// Session tickets: pass the config to NewTicketRotator before handing it to
// servers, and run the rotator, for daily key rotation. Without a rotator,
// crypto/tls rotates its own ticket keys daily but accepts them for 7 days.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: ServerCipherSuites(),
		CurvePreferences: []tls.CurveID{
			tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.X25519, tls.CurveP256,
		},
		Certificates: []tls.Certificate{cert},
	}
}

// TicketKeyPeriod is how long a session-ticket key encrypts new tickets; it
// then decrypts for one more period and is dropped, so a ticket resumes a
// session for at most two periods.
const TicketKeyPeriod = 24 * time.Hour

// TicketRotator owns the session-ticket keys of a server tls.Config: a new
// key first (encrypts), the previous one second (still decrypts, so
// clients resume across a rotation), older ones dropped.
//
// It works through the config's WrapSession/UnwrapSession hooks and a
// private key-holding config, not by calling SetSessionTicketKeys on the
// server's config: http.Server.ServeTLS (and others) serve a Clone of the
// config, which would not see later key changes, while the hooks are
// copied into every clone.
type TicketRotator struct {
	keys *tls.Config // holds the ticket keys; used only for Encrypt/DecryptTicket

	mu        sync.Mutex
	current   [32]byte
	previous  [32]byte
	rotatedAt time.Time // zero until the first rotation with a clock
}

// NewTicketRotator installs ticket hooks on cfg, with a fresh random key,
// and returns the rotator to Run. Call it before cfg is given to a server.
// It starts no goroutine.
func NewTicketRotator(cfg *tls.Config) *TicketRotator {
	r := &TicketRotator{keys: &tls.Config{}}
	r.rotate(time.Time{})
	cfg.WrapSession = r.keys.EncryptTicket
	cfg.UnwrapSession = r.keys.DecryptTicket
	return r
}

// Run rotates the keys once at start and then on every tick on which the
// current key, by clk, is at least TicketKeyPeriod old, until ctx ends.
// Production: Run(ctx, time.Now,
// time.NewTicker(time.Hour).C); checking the age by the wall clock on
// frequent ticks keeps the period right across suspend and resume.
func (r *TicketRotator) Run(ctx context.Context, clk func() time.Time, tick <-chan time.Time) {
	r.rotate(clk())
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			now := clk()
			r.mu.Lock()
			due := now.Sub(r.rotatedAt) >= TicketKeyPeriod
			r.mu.Unlock()
			if due {
				r.rotate(now)
			}
		}
	}
}

// Rotate makes a new key current now, keeping the current one as previous.
func (r *TicketRotator) Rotate(now time.Time) { r.rotate(now) }

func (r *TicketRotator) rotate(now time.Time) {
	var k [32]byte
	_, _ = rand.Read(k[:]) // never fails (crypto/rand since Go 1.24)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.previous, r.current, r.rotatedAt = r.current, k, now
	keys := [][32]byte{r.current}
	if r.previous != ([32]byte{}) {
		keys = append(keys, r.previous)
	}
	r.keys.SetSessionTicketKeys(keys)
}

// currentKeys returns the keys in use, for tests.
func (r *TicketRotator) currentKeys() (current, previous [32]byte, rotatedAt time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current, r.previous, r.rotatedAt
}
