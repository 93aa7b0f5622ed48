// Package netlimit guards listeners before any protocol work is spent on a
// connection: a cap on the connections one remote IP may hold open, and a
// deadline for the first bytes (TLS handshake and the first request or
// MQTT CONNECT), so idle and slowloris connections cannot pile up.
//
// It imports only the standard library.
package netlimit

import (
	"net"
	"sync"
	"time"
)

// Limited caps the connections one remote IP may hold open at a time
// (security row 11). A connection over the cap is closed at once, before
// any TLS or protocol work is spent on it. It also tracks the connections
// it handed out, so an owner can shut them all and wait for the server
// using them to let go (Drain).
type Limited struct {
	net.Listener
	max   int
	first time.Duration
	mu    sync.Mutex
	open  map[string]int
	live  map[*countedConn]struct{}
	wg    sync.WaitGroup
}

// Listener wraps ln: at most max open connections per remote IP, and each
// accepted connection gets a deadline of first from now (0: none), which
// the protocol server replaces once the peer has identified itself.
func Listener(ln net.Listener, max int, first time.Duration) *Limited {
	return &Limited{Listener: ln, max: max, first: first, open: map[string]int{}, live: map[*countedConn]struct{}{}}
}

// Drain closes the listener and every connection it accepted, then waits
// until the server has closed each one (or timeout passes). A server whose
// own shutdown races with connections still being set up can then be
// stopped with none in flight.
func (l *Limited) Drain(timeout time.Duration) {
	_ = l.Listener.Close()
	l.mu.Lock()
	for c := range l.live {
		_ = c.Conn.Close()
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

func (l *Limited) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := sourceIP(c.RemoteAddr())
		l.mu.Lock()
		if l.open[ip] >= l.max {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.open[ip]++
		cc := &countedConn{Conn: c}
		cc.release = func() { l.release(ip, cc) }
		l.live[cc] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		if l.first > 0 {
			_ = c.SetDeadline(time.Now().Add(l.first))
		}
		return cc, nil
	}
}

func (l *Limited) release(ip string, c *countedConn) {
	l.mu.Lock()
	if l.open[ip] <= 1 {
		delete(l.open, ip)
	} else {
		l.open[ip]--
	}
	delete(l.live, c)
	l.mu.Unlock()
	l.wg.Done()
}

func sourceIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return a.String()
}

type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
