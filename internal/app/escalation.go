package app

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/alert"
	"vigil/internal/config"
	"vigil/internal/escalation"
	"vigil/internal/notify"
	"vigil/internal/notify/console"
	"vigil/internal/notify/email"
	"vigil/internal/notify/outbound"
	"vigil/internal/notify/sms"
	"vigil/internal/notify/webhook"
	"vigil/internal/store"
	"vigil/internal/web"
)

// observedStore hands every stored alert change to escalation: the safety
// engine and the alert lifecycle write through it, so a raise, an
// acknowledgement or a cancel reaches the ladders once it is durable.
type observedStore struct {
	store.Store
	observe func(store.Alert)
}

func (o observedStore) RaiseAlert(ctx context.Context, a store.Alert, first store.AlertEntry) (store.Alert, store.RaiseResult, error) {
	got, res, err := o.Store.RaiseAlert(ctx, a, first)
	if err == nil && res == store.RaiseNew {
		o.observe(got)
	}
	return got, res, err
}

func (o observedStore) UpdateAlert(ctx context.Context, a store.Alert, e store.AlertEntry) (store.Alert, error) {
	got, err := o.Store.UpdateAlert(ctx, a, e)
	if err == nil {
		o.observe(got)
	}
	return got, err
}

// setupEscalation builds the channels that are configured (the console
// feed always) and the escalation engine.
func (a *App) setupEscalation(ctx context.Context) error {
	nc := a.cfg.Notify
	log := a.log.With("component", "escalation")
	key, err := a.linkKey(ctx)
	if err != nil {
		return err
	}
	if a.links, err = escalation.NewLinks(key, nc.BaseURL, 24*time.Hour); err != nil {
		return err
	}
	a.hub = console.NewHub(console.Config{}, a.log.With("component", "console-feed"))
	ns := []notify.Notifier{console.NewNotifier(a.hub)}

	client, roots, err := outboundClient(nc)
	if err != nil {
		return err
	}
	if nc.SMTPHost != "" {
		em, err := email.New(email.Config{Host: nc.SMTPHost, Port: nc.SMTPPort, TLS: nc.SMTPTLS, Username: nc.SMTPUsername,
			Password: nc.SMTPPassword, From: nc.SMTPFrom, RootCAs: roots}, a.deps.Clock, log.With("channel", "email"))
		if err != nil {
			return fmt.Errorf("e-mail channel: %w", err)
		}
		ns = append(ns, em)
		a.mail = &mailQueue{send: em.SendText, ch: make(chan mailJob, 64), app: a}
	}
	if nc.SMSAccount != "" {
		sc := sms.Config{BaseURL: nc.SMSBaseURL, AccountSID: nc.SMSAccount, AuthToken: nc.SMSToken,
			From: nc.SMSFrom, Clock: a.deps.Clock, Logger: log.With("channel", "sms"),
			ReplyCode: func(to notify.Target, m notify.Message) string { return a.links.ReplyCode(m.AlertID, to.Address) }}
		if base := strings.TrimRight(nc.BaseURL, "/"); base != "" {
			sc.StatusCallbackURL, sc.InboundURL = base+smsStatusPath, base+smsInboundPath
		}
		s, err := sms.New(client, sc)
		if err != nil {
			return fmt.Errorf("sms channel: %w", err)
		}
		a.sms = s
		ns = append(ns, s)
	}
	if key := nc.WebhookKey.Reveal(); key != "" {
		ns = append(ns, webhook.New(client, func(context.Context, notify.Target) ([]byte, error) { return []byte(key), nil },
			webhook.Config{Clock: a.deps.Clock, Logger: log.With("channel", "webhook")}))
	}
	a.esc = escalation.New(a.store, ns, a.deps.Clock, log, escalation.Config{BaseURL: nc.BaseURL, Links: a.links,
		ChannelHealth: func(channel string, ok bool) {
			if channel != escalation.ChannelConsole {
				a.hub.Degraded(channel, !ok)
			}
		}})
	a.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_escalations_pending", Help: "Escalation ladders waiting for their next step or repeat."},
			func() float64 { return float64(a.esc.Pending()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_console_feed_subscribers", Help: "Consoles connected to the live feed."},
			func() float64 { return float64(a.hub.Subscribers()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vigil_console_feed_dropped_total", Help: "Console feed clients disconnected for falling behind."},
			func() float64 { return float64(a.hub.Dropped()) }),
	)
	return nil
}

// metaLinkKey names the stored key that signs acknowledge links and SMS
// reply codes.
const metaLinkKey = "ack_link_key"

// linkKey returns the key signing acknowledge links, made at first start.
func (a *App) linkKey(ctx context.Context) ([]byte, error) {
	v, err := a.store.GetMeta(ctx, metaLinkKey)
	if errors.Is(err, store.ErrNotFound) {
		b := make([]byte, 32)
		rand.Read(b)
		v = hex.EncodeToString(b)
		if err := a.store.PutMeta(ctx, metaLinkKey, v); err != nil {
			return nil, fmt.Errorf("acknowledge link key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("acknowledge link key: %w", err)
	}
	key, err := hex.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("acknowledge link key: %w", err)
	}
	return key, nil
}

// Public paths of the SMS provider's callbacks.
const (
	smsStatusPath  = "/v1/sms/status"
	smsInboundPath = "/v1/sms/inbound"
)

// registerPublic adds the acknowledge links and, when SMS is on with a
// public base URL, the provider's callbacks to the public listener.
func (a *App) registerPublic(mux *http.ServeMux) error {
	now := func() time.Time { return a.deps.Clock.Now() }
	web.NewAckLink(a.links, a.store, a.safety.Alerts(), a.log.With("component", "ack-link"), now).Register(mux)
	if a.sms == nil || a.cfg.Notify.BaseURL == "" {
		return nil
	}
	log := a.log.With("component", "sms")
	status, err := a.sms.StatusHandler(func(_ context.Context, st sms.Status) error {
		if st.Failed() {
			a.hub.Degraded(escalation.ChannelSMS, true)
			log.Warn("sms not delivered", "provider_id", st.ProviderID, "status", st.Status, "error_code", st.ErrorCode)
		}
		return nil
	})
	if err != nil {
		return err
	}
	inbound, err := a.sms.InboundHandler(func(ctx context.Context, from, code string) (bool, error) {
		id, ok, err := escalation.MatchReply(ctx, a.store, a.links, from, code)
		if err != nil || !ok {
			return false, err
		}
		_, err = a.safety.Alerts().Acknowledge(ctx, id, "sms:"+sms.Suffix(from), "acknowledged by SMS reply")
		if errors.Is(err, alert.ErrIllegal) {
			return false, nil // acknowledged or closed meanwhile
		}
		return err == nil, err
	})
	if err != nil {
		return err
	}
	mux.Handle("POST "+smsStatusPath, status)
	mux.Handle("POST "+smsInboundPath, inbound)
	return nil
}

// feedHandler serves an organisation's live feed, the organisation taken
// from the route's path.
func (a *App) feedHandler() http.Handler {
	return a.hub.Handler(func(r *http.Request) (string, bool) {
		org := r.PathValue("org")
		return org, org != ""
	})
}

// startEscalation resumes the ladders and runs them.
func (a *App) startEscalation(ctx context.Context) error {
	if err := a.esc.Load(ctx); err != nil {
		return err
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.esc.Run(ctx)
	}()
	return nil
}

// outboundClient is the SSRF-safe HTTP client for addresses that
// organisations choose (webhooks, the SMS provider, organisations' own
// identity providers): private, loopback and metadata addresses refused
// unless notify.outbound_allow lets them through; notify.outbound_ca_file
// adds a private CA (also returned, for SMTP).
func outboundClient(nc config.NotifyConfig) (*http.Client, *x509.CertPool, error) {
	var allow []netip.Prefix
	for _, c := range nc.OutboundAllow {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, nil, fmt.Errorf("notify.outbound_allow: %w", err)
		}
		allow = append(allow, p)
	}
	var roots *x509.CertPool
	if nc.OutboundCAFile != "" {
		pem, err := os.ReadFile(nc.OutboundCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("notify.outbound_ca_file: %w", err)
		}
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("notify.outbound_ca_file %s: no PEM certificate in it", nc.OutboundCAFile)
		}
	}
	client, err := outbound.New(outbound.Config{Allow: allow, RootCAs: roots})
	if err != nil {
		return nil, nil, fmt.Errorf("outbound client: %w", err)
	}
	return client, roots, nil
}
