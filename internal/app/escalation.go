package app

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/netip"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/escalation"
	"vigil/internal/notify"
	"vigil/internal/notify/console"
	"vigil/internal/notify/email"
	"vigil/internal/notify/outbound"
	"vigil/internal/notify/sms"
	"vigil/internal/notify/webhook"
	"vigil/internal/store"
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
func (a *App) setupEscalation() error {
	nc := a.cfg.Notify
	log := a.log.With("component", "escalation")
	a.hub = console.NewHub(console.Config{}, a.log.With("component", "console-feed"))
	ns := []notify.Notifier{console.NewNotifier(a.hub)}

	var allow []netip.Prefix
	for _, c := range nc.OutboundAllow {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return fmt.Errorf("notify.outbound_allow: %w", err)
		}
		allow = append(allow, p)
	}
	var roots *x509.CertPool
	if nc.OutboundCAFile != "" {
		pem, err := os.ReadFile(nc.OutboundCAFile)
		if err != nil {
			return fmt.Errorf("notify.outbound_ca_file: %w", err)
		}
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("notify.outbound_ca_file %s: no PEM certificate in it", nc.OutboundCAFile)
		}
	}
	client, err := outbound.New(outbound.Config{Allow: allow, RootCAs: roots})
	if err != nil {
		return fmt.Errorf("outbound client: %w", err)
	}
	if nc.SMTPHost != "" {
		em, err := email.New(email.Config{Host: nc.SMTPHost, Port: nc.SMTPPort, TLS: nc.SMTPTLS, Username: nc.SMTPUsername,
			Password: nc.SMTPPassword, From: nc.SMTPFrom, RootCAs: roots}, a.deps.Clock, log.With("channel", "email"))
		if err != nil {
			return fmt.Errorf("e-mail channel: %w", err)
		}
		ns = append(ns, em)
	}
	if nc.SMSAccount != "" {
		s, err := sms.New(client, sms.Config{BaseURL: nc.SMSBaseURL, AccountSID: nc.SMSAccount, AuthToken: nc.SMSToken,
			From: nc.SMSFrom, Clock: a.deps.Clock, Logger: log.With("channel", "sms")})
		if err != nil {
			return fmt.Errorf("sms channel: %w", err)
		}
		ns = append(ns, s)
	}
	if key := nc.WebhookKey.Reveal(); key != "" {
		ns = append(ns, webhook.New(client, func(context.Context, notify.Target) ([]byte, error) { return []byte(key), nil },
			webhook.Config{Clock: a.deps.Clock, Logger: log.With("channel", "webhook")}))
	}
	a.esc = escalation.New(a.store, ns, a.deps.Clock, log, escalation.Config{BaseURL: nc.BaseURL,
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
