package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"vigil/internal/device"
	"vigil/internal/notify/webhook"
)

var apiAddrRe = regexp.MustCompile(` api=(\S+)`)

// hookLog is a webhook receiver's record of what it was sent.
type hookLog struct {
	mu   sync.Mutex
	got  map[string]int // "event/step/attempt" → deliveries
	when map[string]time.Time
	bad  []string
}

func (h *hookLog) count(k string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got[k]
}

// TestEscalationSurvivesKill9: an SOS escalates through three 10 s steps
// to a signed webhook. The server is killed with SIGKILL after the second
// step, stays down past the third step's moment, and starts again: the
// third step is sent at once, the ladder then runs out (the admins are
// told), and the receiver got every step exactly once — nothing twice,
// nothing skipped.
// tokenRe finds the API token `vigil token create` prints.
var tokenRe = regexp.MustCompile(`vgt_[A-Za-z0-9_-]+`)

func TestEscalationSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 test runs the server as a process; skipped with -short")
	}
	dir := t.TempDir()
	vigilRun(t, "org", "add", "--data-dir", dir, "--id", "crash", "--name", "Crash test")
	var creds device.Credentials
	if err := json.Unmarshal([]byte(vigilRun(t, "device", "add", "--data-dir", dir, "--org", "crash", "--name", "pendant", "--json")), &creds); err != nil {
		t.Fatal(err)
	}

	key := []byte("webhook-key-canary-7d1c")
	log := &hookLog{got: map[string]int{}, when: map[string]time.Time{}}
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		log.mu.Lock()
		defer log.mu.Unlock()
		if err := webhook.Verify(key, r.Header, body, time.Now(), 0); err != nil {
			log.bad = append(log.bad, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			log.bad = append(log.bad, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		k := fmt.Sprintf("%s/%d/%d", p.Event, p.Step, p.Attempt)
		log.got[k]++
		log.when[k] = time.Now()
	}))
	t.Cleanup(recv.Close)
	keyFile, caFile := filepath.Join(dir, "webhook.key"), filepath.Join(dir, "receiver-ca.pem")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: recv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--webhook-key-file", keyFile, "--outbound-allow", "127.0.0.1/32", "--outbound-ca-file", caFile}
	srv := startServer(t, dir, flags...)

	tlsCfg := caTLS(t, dir)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 10 * time.Second}
	// The address line reaches srv.out just after startServer saw it.
	var m []string
	for end := time.Now().Add(10 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		if m = apiAddrRe.FindStringSubmatch(srv.out.String()); m == nil && time.Now().After(end) {
			t.Fatalf("no api address in:\n%s", srv.out.String())
		}
	}
	policy := fmt.Sprintf(`{"steps":[
		{"name":"duty","recipients":[{"channel":"webhook","address":%q}],"wait":"10s"},
		{"name":"manager","recipients":[{"channel":"webhook","address":%q}],"wait":"10s"},
		{"name":"director","recipients":[{"channel":"webhook","address":%q}],"wait":"10s"}],
		"admins":[{"channel":"webhook","address":%q}]}`, recv.URL+"/a", recv.URL+"/b", recv.URL+"/c", recv.URL+"/admins")
	tok := tokenRe.FindString(vigilRun(t, "token", "create", "--data-dir", dir, "--org", "crash", "--name", "crash test"))
	req, _ := http.NewRequest("PUT", "https://"+m[1]+"/api/v1/orgs/crash/escalation-policies/sos", strings.NewReader(policy))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("put policy: %d %s", resp.StatusCode, b)
	}

	// The SOS, over MQTT.
	conn, err := tls.Dial("tcp", srv.mqtt, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ca, err := cl.Connect(ctx, &paho.Connect{ClientID: creds.DeviceID, Username: creds.DeviceID, UsernameFlag: true,
		Password: []byte(creds.Secret), PasswordFlag: true, KeepAlive: 30, CleanStart: true}); err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect: %v %+v", err, ca)
	}
	payload := fmt.Sprintf(`{"v":1,"id":"sos-1","ts":%q,"type":"button","button":{"kind":"sos"}}`, time.Now().UTC().Format(time.RFC3339Nano))
	if pr, err := cl.Publish(ctx, &paho.Publish{Topic: "v1/devices/" + creds.DeviceID + "/events", QoS: 1, Payload: []byte(payload)}); err != nil || pr.ReasonCode >= 0x80 {
		t.Fatalf("publish: %v %+v", err, pr)
	}
	_ = cl.Disconnect(&paho.Disconnect{})
	conn.Close()

	waitFor := func(k string, within time.Duration) {
		t.Helper()
		for end := time.Now().Add(within); log.count(k) == 0; time.Sleep(20 * time.Millisecond) { // polling the receiver, not asserting time
			if time.Now().After(end) {
				t.Fatalf("the receiver never got %s; it got %v (rejected %v)\n%s", k, log.got, log.bad, srv.out.String())
			}
		}
	}
	waitFor("raised/0/0", 30*time.Second)
	log.mu.Lock()
	raised := log.when["raised/0/0"]
	log.mu.Unlock()
	waitFor("reminder/1/0", 30*time.Second)
	// Give the ladder a moment to store its next step, then kill it and
	// stay down past the third step's moment (20 s after the raise).
	time.Sleep(time.Second)
	srv.kill9()
	time.Sleep(time.Until(raised.Add(23 * time.Second)))
	if n := log.count("reminder/2/0"); n != 0 {
		t.Fatalf("the third step was sent while the server was down (%d)", n)
	}
	srv = startServer(t, dir, flags...)
	waitFor("reminder/2/0", 30*time.Second)
	waitFor("exhausted/3/0", 30*time.Second)
	srv.stop()

	log.mu.Lock()
	defer log.mu.Unlock()
	want := map[string]int{"raised/0/0": 1, "reminder/1/0": 1, "reminder/2/0": 1, "exhausted/3/0": 1}
	if fmt.Sprint(log.got) != fmt.Sprint(want) || len(log.bad) != 0 {
		t.Errorf("the receiver got %v (rejected %v), want each step once: %v", log.got, log.bad, want)
	}
	if late := log.when["reminder/2/0"].Sub(raised); late < 23*time.Second {
		t.Errorf("the third step arrived %v after the raise, before the restart", late)
	}
	if strings.Contains(srv.out.String(), string(key)) {
		t.Error("the webhook key is in the server's output")
	}
}
