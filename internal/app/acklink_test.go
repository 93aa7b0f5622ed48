package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/internal/config"
	"vigil/internal/event"
	"vigil/internal/notify/sms"
	"vigil/internal/notify/webhook"
	"vigil/internal/store"
	"vigil/internal/vigiltest"
	"vigil/internal/web"
)

// farEnds is a webhook receiver and a Twilio-compatible SMS provider on
// 127.0.0.2 (a private address the server may reach only because the test
// allows it), over TLS with their own certificate.
type farEnds struct {
	srv   *httptest.Server
	mu    sync.Mutex
	hooks []webhook.Payload
	texts []url.Values
}

func startFarEnds(t *testing.T) *farEnds {
	t.Helper()
	f := &farEnds{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
		var p webhook.Payload
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &p); err != nil {
			w.WriteHeader(400)
			return
		}
		f.mu.Lock()
		f.hooks = append(f.hooks, p)
		f.mu.Unlock()
	})
	mux.HandleFunc("POST /2010-04-01/Accounts/AC123/Messages.json", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.mu.Lock()
		f.texts = append(f.texts, r.PostForm)
		n := len(f.texts)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"sid":"SM%d","status":"queued"}`, n)
	})
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		if os.Getenv("CI") != "" { // CI runs on Linux: these tests must run there
			t.Fatalf("127.0.0.2 is not routable here: %v", err)
		}
		t.Skipf("127.0.0.2 is not routable here: %v", err)
	}
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Listener = ln
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t, net.ParseIP("127.0.0.2"))}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// selfSigned makes a certificate for ip (httptest's own names 127.0.0.1
// only).
func selfSigned(t *testing.T, ip net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "far end"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{ip},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

var replyCodeRe = regexp.MustCompile(`Reply ACK ([0-9A-Z]{6})`)

// TestAcknowledgeByLinkAndSMSReply: an SOS escalates to a webhook and an
// SMS. The webhook's acknowledge link is built from the configured base
// URL (never the request's host); opening it shows a button and does not
// acknowledge; pressing it does, once. A second SOS is acknowledged by
// replying "ACK <code>" to its text, through the provider's signed
// callback; a forged callback is refused.
func TestAcknowledgeByLinkAndSMSReply(t *testing.T) {
	far := startFarEnds(t)
	cfg := vigiltest.Config(t)
	caFile := filepath.Join(t.TempDir(), "far-ends.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: far.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	const token = "sms-token-canary-93b1"
	cfg.Notify = config.NotifyConfig{BaseURL: "https://vigil.example.org", WebhookKey: "webhook-key-canary-11aa",
		SMSAccount: "AC123", SMSToken: token, SMSFrom: "+447700900000", SMSBaseURL: far.srv.URL,
		OutboundAllow: []string{"127.0.0.2/32"}, OutboundCAFile: caFile}
	a := vigiltest.StartApp(t, cfg)
	api := newAPIClient(t, a)
	public := &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(t, a)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	const phone = "+447700900123"
	if err := a.Devices().EnsureOrg(context.Background(), "acme", "Acme Care"); err != nil {
		t.Fatal(err)
	}
	if code := api.do("PUT", "/api/v1/orgs/acme/escalation-policies/sos", fmt.Sprintf(
		`{"steps":[{"recipients":[{"channel":"webhook","address":%q},{"channel":"sms","address":%q}],"wait":"5m"}]}`,
		far.srv.URL+"/hook", phone), nil); code != 200 {
		t.Fatalf("put policy: %d", code)
	}

	sos := func(person string) web.AlertJSON {
		t.Helper()
		dev := registerWorker(t, a, person)
		cl := mqttConnect(t, a, dev)
		publishEvent(t, cl, dev.DeviceID, event.Message{V: 1, ID: "sos-" + person, TS: time.Now().UTC(), Type: event.TypeButton,
			Button: &event.Button{Kind: event.ButtonSOS}})
		var list struct{ Alerts []web.AlertJSON }
		eventually(t, "the SOS of "+person, func() bool {
			api.do("GET", "/api/v1/alerts?org=acme&person="+person, "", &list)
			return len(list.Alerts) == 1
		})
		return list.Alerts[0]
	}

	// The link.
	first := sos("p1")
	var ackURL string
	eventually(t, "the webhook with its link", func() bool {
		far.mu.Lock()
		defer far.mu.Unlock()
		for _, h := range far.hooks {
			if h.AlertID == first.ID {
				ackURL = h.AckURL
			}
		}
		return ackURL != ""
	})
	path, ok := strings.CutPrefix(ackURL, "https://vigil.example.org/ack/")
	if !ok {
		t.Fatalf("ack link %q is not under the configured base URL", ackURL)
	}
	page := func(method, p string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+a.Addr("https")+p, nil)
		req.Host = "evil.example"
		req.Header.Set("X-Forwarded-Host", "evil.example")
		resp, err := public.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := page("GET", "/ack/"+path); code != 200 || !strings.Contains(body, `<form method="post">`) || strings.Contains(body, "evil.example") {
		t.Errorf("GET link: %d %s", code, body)
	}
	var got web.AlertJSON
	api.do("GET", "/api/v1/alerts/"+first.ID, "", &got)
	if got.State != "raised" {
		t.Fatalf("opening the link changed the alert to %s", got.State)
	}
	if code, body := page("POST", "/ack/"+path); code != 200 || !strings.Contains(body, "Acknowledged") {
		t.Errorf("POST link: %d %s", code, body)
	}
	api.do("GET", "/api/v1/alerts/"+first.ID, "", &got)
	if got.State != "acknowledged" || !strings.HasPrefix(got.AcknowledgedBy, "link:") {
		t.Errorf("after the link: %s by %q", got.State, got.AcknowledgedBy)
	}
	if code, _ := page("POST", "/ack/"+path); code != 409 {
		t.Errorf("second POST: %d, want 409", code)
	}
	if code, _ := page("POST", "/ack/"+path[:len(path)-3]+"AAA"); code != 404 {
		t.Errorf("forged link: %d, want 404", code)
	}

	// The SMS reply.
	second := sos("p2")
	var text string
	eventually(t, "the text of the second SOS", func() bool {
		far.mu.Lock()
		defer far.mu.Unlock()
		for _, f := range far.texts {
			if f.Get("To") == phone && strings.Contains(f.Get("Body"), "SOS") {
				text = f.Get("Body")
			}
		}
		return replyCodeRe.MatchString(text) && len(far.texts) >= 2
	})
	code := replyCodeRe.FindStringSubmatch(text)[1]
	reply := func(body, signedWith string) int {
		t.Helper()
		form := url.Values{"From": {phone}, "Body": {body}, "AccountSid": {"AC123"}, "MessageSid": {"SMin1"}}
		req, _ := http.NewRequest("POST", "https://"+a.Addr("https")+"/v1/sms/inbound", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(sms.SignatureHeader, sms.Signature(signedWith, "https://vigil.example.org/v1/sms/inbound", form))
		resp, err := public.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := reply("ack "+code, "not-the-token"); c != 403 {
		t.Errorf("forged reply: %d, want 403", c)
	}
	api.do("GET", "/api/v1/alerts/"+second.ID, "", &got)
	if got.State != "raised" {
		t.Fatalf("a forged reply changed the alert to %s", got.State)
	}
	if c := reply("ack "+strings.ToLower(code), token); c != 200 {
		t.Errorf("reply: %d", c)
	}
	api.do("GET", "/api/v1/alerts/"+second.ID, "", &got)
	if got.State != "acknowledged" || got.AcknowledgedBy != "sms:"+sms.Suffix(phone) {
		t.Errorf("after the reply: %s by %q", got.State, got.AcknowledgedBy)
	}
	var ds struct {
		Deliveries []struct{ Channel, Status string }
	}
	api.do("GET", "/api/v1/alerts/"+second.ID+"/deliveries", "", &ds)
	sent := map[string]string{}
	for _, d := range ds.Deliveries {
		sent[d.Channel] = d.Status
	}
	if sent["sms"] != string(store.DeliverySent) || sent["webhook"] != string(store.DeliverySent) {
		t.Errorf("deliveries %+v", ds.Deliveries)
	}
}
