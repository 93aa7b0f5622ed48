package enrol

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"vigil/internal/audit"
	"vigil/internal/clock"
	"vigil/internal/pki"
	"vigil/internal/store"
)

// Renewal (security requirement 3, "renewal before expiry with the current
// certificate"): a device that holds its current, valid certificate proves
// it in the TLS handshake and sends a CSR for a new key; it gets a new
// certificate and the stored fingerprint moves to it.
//
// Switch-over. A safety device must never be left without a working
// identity, and two identities must not stay valid side by side:
//   - a live MQTT connection made with the old certificate is not cut by
//     a renewal (only revocation cuts), so an alarm in flight is never
//     lost; a NEW connection must present the new certificate (the old
//     one gets CONNACK 0x86 at once, as after a re-enrolment);
//   - if the answer to a renewal is lost, the device may renew again with
//     the certificate it just replaced, for RetryGrace after that
//     renewal and only while no other renewal or enrolment happened since
//     (the record is kept in the store's meta table, so every instance
//     honours it). Outside that, the old certificate is refused and the
//     device needs a new enrolment token.

// Renewal defaults.
const (
	// DefaultRenewWindow is how long before its expiry a certificate may
	// be renewed; earlier is refused (too_early, HTTP 409).
	DefaultRenewWindow = 60 * 24 * time.Hour
	// DefaultRetryGrace is how long the certificate a renewal replaced
	// may still renew, in case the answer was lost.
	DefaultRetryGrace = 10 * time.Minute
	// DefaultRenewLimit renewal attempts per device per RenewLimitPeriod.
	DefaultRenewLimit = 5
	RenewLimitPeriod  = time.Hour
)

// Renewal refusal codes (with CodeBadCSR and CodeKeyNotAllowed).
const (
	CodeCertRequired   = "client_cert_required" // no client certificate in the handshake
	CodeCertInvalid    = "client_cert_invalid"  // expired, another CA's, no clientAuth, not a device certificate
	CodeDeviceRevoked  = "device_revoked"       // the device is unknown or disabled
	CodeCertNotCurrent = "cert_not_current"     // a valid certificate, but not the device's current one
	CodeWrongDevice    = "csr_wrong_device"     // the CSR names another device
	CodeKeyReused      = "key_reused"           // the CSR's key is the current certificate's
	CodeTooEarly       = "too_early"            // more than the renewal window before expiry
	CodeRateLimited    = "rate_limited"         // too many attempts for this device
)

// RenewStore is what renewal needs from the store.
type RenewStore interface {
	GetDevice(ctx context.Context, id string) (store.Device, error)
	SetDeviceCertFingerprint(ctx context.Context, deviceID, fingerprint string) error
	GetMeta(ctx context.Context, key string) (string, error)
	PutMeta(ctx context.Context, key, value string) error
}

// Auditor records audit entries (audit.Log).
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// RenewConfig tunes renewal; the zero value takes the defaults.
type RenewConfig struct {
	CertValidity time.Duration // default pki.DeviceValidity (1 year)
	Window       time.Duration // default DefaultRenewWindow (60 days)
	RetryGrace   time.Duration // default DefaultRetryGrace (10 minutes)
	Limit        int           // attempts per device per hour; default DefaultRenewLimit
}

// Renewer renews device certificates. Safe for concurrent use: renewals
// of one device are serialised on this instance.
type Renewer struct {
	st  RenewStore
	ca  *pki.CA
	aud Auditor // nil: no audit record (tests of the domain alone)
	clk clock.Clock
	log *slog.Logger
	cfg RenewConfig

	mu       sync.Mutex
	attempts map[string][]time.Time // device id → attempt times within the last period
	busy     map[string]*sync.Mutex // device id → its renewal lock
}

// NewRenewer returns the renewal service.
func NewRenewer(cfg RenewConfig, st RenewStore, ca *pki.CA, aud Auditor, clk clock.Clock, log *slog.Logger) *Renewer {
	if cfg.CertValidity <= 0 {
		cfg.CertValidity = pki.DeviceValidity
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultRenewWindow
	}
	if cfg.RetryGrace <= 0 {
		cfg.RetryGrace = DefaultRetryGrace
	}
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultRenewLimit
	}
	return &Renewer{st: st, ca: ca, aud: aud, clk: clk, log: log, cfg: cfg,
		attempts: map[string][]time.Time{}, busy: map[string]*sync.Mutex{}}
}

// renewedKey is the meta key of a device's last renewal: "<replaced
// fingerprint> <new fingerprint> <unix seconds of the renewal>".
func renewedKey(deviceID string) string { return "enrol.renewed." + deviceID }

// Renew issues a new certificate to the device whose current certificate
// heads chain (as presented in the TLS handshake, unverified) for the key
// in csrPEM. It returns the device id, the certificate and the CA's, in
// PEM. A refusal is a *Refusal; anything else a failure to renew.
func (r *Renewer) Renew(ctx context.Context, chain []*x509.Certificate, csrPEM []byte) (deviceID string, certPEM, caPEM []byte, err error) {
	now := r.clk.Now()
	if len(chain) == 0 {
		return "", nil, nil, r.refused("", "", CodeCertRequired, "a client certificate is required: present the device's current certificate in the TLS handshake")
	}
	if err := pki.VerifyClient(chain, r.ca.Pool(), now); err != nil {
		return "", nil, nil, r.refused("", "", CodeCertInvalid, "the client certificate is not valid (expired, not yet valid, not issued by Vigil's CA, or not for client authentication); enrol again with a new token")
	}
	cur := chain[0]
	id, err := pki.DeviceID(cur)
	if err != nil {
		return "", nil, nil, r.refused("", "", CodeCertInvalid, "the client certificate is not a Vigil device certificate")
	}
	if wait, ok := r.allow(id, now); !ok {
		ref := &Refusal{Code: CodeRateLimited, Msg: "too many renewal attempts for this device; retry later", RetryAfter: wait}
		r.log.Warn("device renewal refused", "device_id", id, "reason", CodeRateLimited)
		return id, nil, nil, ref
	}
	lock := r.lock(id)
	lock.Lock()
	defer lock.Unlock()

	d, err := r.st.GetDevice(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return id, nil, nil, r.refused("", id, CodeDeviceRevoked, "this device is not registered")
	}
	if err != nil {
		return id, nil, nil, fmt.Errorf("renew device %s: %w", id, err)
	}
	if !d.DisabledAt.IsZero() && !d.DisabledAt.After(now) {
		return id, nil, nil, r.refused(d.OrgID, id, CodeDeviceRevoked, "this device is revoked")
	}
	fp := pki.Fingerprint(cur.Raw)
	retry, renewedAt := false, now
	if fp != d.CertFingerprint {
		if retry, renewedAt, err = r.isRetry(ctx, id, fp, d.CertFingerprint, now); err != nil {
			return id, nil, nil, fmt.Errorf("renew device %s: %w", id, err)
		}
		if !retry {
			return id, nil, nil, r.refused(d.OrgID, id, CodeCertNotCurrent, "this certificate is not the device's current one; enrol again with a new token")
		}
	}
	if from := cur.NotAfter.Add(-r.cfg.Window); !retry && now.Before(from) {
		return id, nil, nil, r.refused(d.OrgID, id, CodeTooEarly, fmt.Sprintf("the certificate is valid until %s; renew from %s (%d days before expiry)",
			cur.NotAfter.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339), int(r.cfg.Window/(24*time.Hour))))
	}
	pub, err := r.checkCSR(d.OrgID, id, csrPEM)
	if err != nil {
		return id, nil, nil, err
	}
	if k, ok := cur.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && k.Equal(pub) {
		return id, nil, nil, r.refused(d.OrgID, id, CodeKeyReused, "the CSR must be for a new key, not the current certificate's")
	}
	der, err := r.ca.IssueDevice(id, pub, now, r.cfg.CertValidity)
	if err != nil {
		return id, nil, nil, fmt.Errorf("renew device %s: %w", id, err)
	}
	newFP := pki.Fingerprint(der)
	// The retry record first: should the fingerprint write fail, it names
	// a certificate nobody holds and a fingerprint that is not current. A
	// retry keeps the first renewal's time: the grace does not extend.
	if err := r.st.PutMeta(ctx, renewedKey(id), fp+" "+newFP+" "+strconv.FormatInt(renewedAt.Unix(), 10)); err != nil {
		return id, nil, nil, fmt.Errorf("renew device %s: %w", id, err)
	}
	if err := r.st.SetDeviceCertFingerprint(ctx, id, newFP); err != nil {
		return id, nil, nil, fmt.Errorf("renew device %s: %w", id, err)
	}
	// An unaudited renewal is not answered: the fingerprint has moved,
	// but the device may retry with its old certificate (RetryGrace).
	if err := r.record(ctx, d.OrgID, id, audit.OutcomeOK, map[string]string{"old_fingerprint": fp, "new_fingerprint": newFP,
		"old_not_after": cur.NotAfter.UTC().Format(time.RFC3339), "retry": strconv.FormatBool(retry)}); err != nil {
		return id, nil, nil, fmt.Errorf("renew device %s: %w", id, err)
	}
	r.log.Info("device certificate renewed", "device_id", id, "cert_fingerprint", newFP, "retry", retry)
	return id, pki.PEMCert(der), r.ca.CertPEM(), nil
}

// isRetry reports whether fp is the certificate replaced by the device's
// last renewal, within the grace of that renewal (at) and with nothing
// issued since.
func (r *Renewer) isRetry(ctx context.Context, id, fp, current string, now time.Time) (ok bool, at time.Time, err error) {
	v, err := r.st.GetMeta(ctx, renewedKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, err
	}
	f := strings.Fields(v)
	if len(f) != 3 {
		return false, time.Time{}, nil
	}
	sec, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return false, time.Time{}, nil
	}
	at = time.Unix(sec, 0)
	return f[0] == fp && f[1] == current && now.Before(at.Add(r.cfg.RetryGrace)), at, nil
}

// checkCSR parses the CSR (signature, key policy) and checks that every
// name it carries is the device's: its CN must be the device id, and its
// URI SANs, if any, urn:vigil:device:<id>.
func (r *Renewer) checkCSR(orgID, id string, csrPEM []byte) (crypto.PublicKey, error) {
	pub, err := pki.ParseDeviceCSR(csrPEM)
	if err != nil {
		code := CodeBadCSR
		if errors.Is(err, pki.ErrKeyNotAllowed) {
			code = CodeKeyNotAllowed
		}
		return nil, r.refused(orgID, id, code, strings.TrimPrefix(err.Error(), "pki: "))
	}
	blk, _ := pem.Decode(csrPEM) // parsed above
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, r.refused(orgID, id, CodeBadCSR, "not a valid certificate signing request")
	}
	ok := csr.Subject.CommonName == id
	for _, u := range csr.URIs {
		ok = ok && u.String() == pki.DeviceURI(id)
	}
	if !ok || len(csr.DNSNames)+len(csr.EmailAddresses)+len(csr.IPAddresses) > 0 {
		return nil, r.refused(orgID, id, CodeWrongDevice, "the CSR must name this device: subject CN the device id, URI SAN (if any) "+pki.DeviceURIPrefix+"<device id>, no other names")
	}
	return pub, nil
}

// allow counts an attempt for the device and reports whether it is within
// the limit; if not, how long until the oldest attempt leaves the period.
func (r *Renewer) allow(id string, now time.Time) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.attempts) > 10000 { // forget idle devices now and then
		for k, ts := range r.attempts {
			if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= RenewLimitPeriod {
				delete(r.attempts, k)
			}
		}
	}
	ts := r.attempts[id][:0:0]
	for _, t := range r.attempts[id] {
		if now.Sub(t) < RenewLimitPeriod {
			ts = append(ts, t)
		}
	}
	if len(ts) >= r.cfg.Limit {
		r.attempts[id] = ts
		return RenewLimitPeriod - now.Sub(ts[0]), false
	}
	r.attempts[id] = append(ts, now)
	return 0, true
}

func (r *Renewer) lock(id string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.busy[id]
	if l == nil {
		l = &sync.Mutex{}
		r.busy[id] = l
	}
	return l
}

// refused logs a refusal (and audits it, for an identified device) and
// returns it.
func (r *Renewer) refused(orgID, id, code, msg string) error {
	r.log.Warn("device renewal refused", "device_id", id, "reason", code)
	if id != "" && code != CodeBadCSR && code != CodeKeyNotAllowed && code != CodeTooEarly {
		if err := r.record(context.Background(), orgID, id, audit.OutcomeDenied, map[string]string{"reason": code}); err != nil {
			r.log.Error("audit: device renewal refusal not recorded", "device_id", id, "err", err)
		}
	}
	return &Refusal{Code: code, Msg: msg}
}

// record writes a device.renew audit entry.
func (r *Renewer) record(ctx context.Context, orgID, id, outcome string, details map[string]string) error {
	if r.aud == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return r.aud.Record(ctx, audit.Entry{OrgID: orgID, Actor: "device:" + id, Action: "device.renew",
		ObjectType: "device", ObjectID: id, Outcome: outcome, Severity: audit.SeverityHigh, Details: details})
}
