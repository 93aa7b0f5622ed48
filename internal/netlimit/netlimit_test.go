package netlimit_test

import (
	"net"
	"testing"
	"time"

	"vigil/internal/netlimit"
)

func TestCapAndDrain(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := netlimit.Listener(raw, 2, 0)
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	a1, a2 := <-accepted, <-accepted
	// The third connection from the same IP is closed by the listener.
	_ = clients[2].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := clients[2].Read(make([]byte, 1)); err == nil {
		t.Fatal("third connection not closed")
	}
	// Closing one frees a place.
	a1.Close()
	c4, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	a4 := <-accepted
	// Drain closes what is open and waits until the server closed each.
	go func() {
		buf := make([]byte, 1)
		for _, c := range []net.Conn{a2, a4} {
			_, _ = c.Read(buf) // fails once Drain closes the socket
			c.Close()
		}
	}()
	done := make(chan struct{})
	go func() { l.Drain(time.Minute); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Drain did not return once the server closed its connections")
	}
	if _, ok := <-accepted; ok {
		t.Fatal("listener still accepting after Drain")
	}
}
