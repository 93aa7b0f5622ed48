package app_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/internal/vigiltest"
)

// zeros is an endless body that allocates nothing.
type zeros struct{ n, limit int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n >= z.limit {
		return 0, io.EOF
	}
	if int64(len(p)) > z.limit-z.n {
		p = p[:z.limit-z.n]
	}
	clear(p)
	z.n += int64(len(p))
	return len(p), nil
}

// Security row 11: a 100 MB body is refused with 413 without the server
// buffering it.
func TestHugeBodyRefused(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	c := register(t, a)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(t, a)}}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest("POST", "https://"+a.Addr("https")+"/api/v1/devices/"+c.DeviceID+"/events", &zeros{limit: 100 << 20})
	req.ContentLength = 100 << 20
	req.Header.Set("Authorization", "Bearer "+c.Secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST 100 MB: %v (the server must answer 413, not just hang up)", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// Client and server share this process: the memory it took from the
	// OS while 100 MB went by must stay far below the body size.
	if grown := int64(after.Sys) - int64(before.Sys); grown > 20<<20 {
		t.Fatalf("process memory grew %d MB while refusing a 100 MB body", grown>>20)
	}
	// A chunked body of unknown length is cut off at the limit as well.
	req, _ = http.NewRequest("POST", "https://"+a.Addr("https")+"/api/v1/devices/"+c.DeviceID+"/events", io.MultiReader(&zeros{limit: 100 << 20}))
	req.Header.Set("Authorization", "Bearer "+c.Secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatalf("POST chunked 100 MB: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: status %d, want 413", resp.StatusCode)
	}
}

// Security row 11: slowloris connections dripping headers from one source
// do not stop a valid request from another source being served.
func TestSlowlorisDoesNotStarveOthers(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	c := register(t, a)
	addr := a.Addr("https")
	tlsCfg := vigiltest.ClientTLS(t, a)
	const slow = 500
	var wg sync.WaitGroup
	conns := make(chan net.Conn, slow)
	for i := 0; i < slow; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}
			conn, err := tls.DialWithDialer(d, "tcp", addr, tlsCfg)
			if err != nil {
				return // over the per-source cap: refused, which is fine
			}
			_, _ = conn.Write([]byte("POST /api/v1/devices/x/events HTTP/1.1\r\nHost: x\r\nX-A: "))
			conns <- conn
		}()
	}
	wg.Wait()
	close(conns)
	held := 0
	for conn := range conns {
		held++
		defer conn.Close()
	}
	if held == 0 {
		t.Fatal("no slowloris connection was accepted: the test exercises nothing")
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg, DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}).DialContext}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	body := fmt.Sprintf(`{"events":[{"v":1,"id":"ok","ts":%q,"type":"heartbeat"}]}`, time.Now().UTC().Format(time.RFC3339))
	req, _ := http.NewRequestWithContext(context.Background(), "POST", "https://"+addr+"/api/v1/devices/"+c.DeviceID+"/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.Secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("valid request with %d slowloris connections open: %v", held, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("valid request: %d", resp.StatusCode)
	}
}

// Connections over the per-source cap are closed before TLS. Plain TCP
// connects are used to fill the cap: they are fast enough that none of them
// reaches the server's handshake timeout meanwhile.
func TestPerSourceConnectionCap(t *testing.T) {
	a := vigiltest.StartApp(t, vigiltest.Config(t))
	addr := a.Addr("https")
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 4)}, Timeout: 5 * time.Second}
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := 0; i < 512; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		open = append(open, c)
	}
	over, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	_ = over.SetReadDeadline(time.Now().Add(3 * time.Second))
	var ne net.Error
	if _, err := over.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection 513 from one source not closed: %v", err)
	}
	// A connection inside the cap is served: its TLS handshake completes.
	tc := tls.Client(open[0], vigiltest.ClientTLS(t, a))
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("connection inside the cap refused: %v", err)
	}
}
