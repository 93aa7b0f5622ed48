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

// perSourceListener caps the connections one remote IP may hold open at a
// time (security row 11). A connection over the cap is closed at once,
// before any TLS or HTTP work is spent on it.
type perSourceListener struct {
	net.Listener
	max   int
	first time.Duration
	mu    sync.Mutex
	open  map[string]int
}

// Listener wraps ln: at most max open connections per remote IP, and each
// accepted connection gets a deadline of first from now (0: none), which
// the protocol server replaces once the peer has identified itself.
func Listener(ln net.Listener, max int, first time.Duration) net.Listener {
	return &perSourceListener{Listener: ln, max: max, first: first, open: map[string]int{}}
}

func (l *perSourceListener) Accept() (net.Conn, error) {
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
		l.mu.Unlock()
		if l.first > 0 {
			_ = c.SetDeadline(time.Now().Add(l.first))
		}
		return &countedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *perSourceListener) release(ip string) {
	l.mu.Lock()
	if l.open[ip] <= 1 {
		delete(l.open, ip)
	} else {
		l.open[ip]--
	}
	l.mu.Unlock()
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
