package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServerTimesOutSlowClients holds connections that send nothing, send
// their headers or body a byte at a time, or stay idle after a request:
// the server closes each after its timeout, serving others meanwhile; and
// beyond -max-conns a new connection waits until one is closed.
func TestServerTimesOutSlowClients(t *testing.T) {
	// Not parallel: it times the server's answers to the half second, which
	// the other tests' load would blur.
	const timeout, maxConns = time.Second, 6
	r := startRun(t, nil, "-read-timeout", timeout.String(), "-idle-timeout", timeout.String(), "-max-conns", fmt.Sprint(maxConns))

	// Five of the six connections held by slow clients.
	held := []*heldConn{
		holdConn(t, r.addr, "silent", nil),
		holdConn(t, r.addr, "silent", nil),
		holdConn(t, r.addr, "slow headers", []byte("POST /checkout/slow HTTP/1.1\r\nHost: shop\r\nX-Padding: "+strings.Repeat("a", 100))),
		holdConn(t, r.addr, "slow body", []byte("POST /checkout/slow HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"+
			`{"product_id": 1, "quantity": 1`+strings.Repeat(" ", 100))),
		holdConn(t, r.addr, "idle after a request", []byte("GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")),
	}
	// The sixth serves a customer as usual, on one kept-alive connection.
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for range 5 {
		start := time.Now()
		resp, err := client.Get("http://" + r.addr + "/api/products")
		if err != nil {
			t.Fatalf("a customer's request beside the slow clients: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if d := time.Since(start); resp.StatusCode != 200 || d > timeout/2 {
			t.Errorf("a customer's request beside the slow clients: %s after %v", resp.Status, d)
		}
	}
	client.CloseIdleConnections()

	for _, h := range held {
		closed, err := h.closedAfter(5 * timeout)
		if err != nil {
			t.Errorf("%s connection: %v", h.name, err)
			continue
		}
		t.Logf("%s connection: closed by the server after %v", h.name, closed.Round(time.Millisecond))
		if closed < timeout*9/10 {
			t.Errorf("%s connection: closed after %v, before the %v timeout", h.name, closed, timeout)
		}
	}

	// Every slot held: a new connection is served only once the server
	// has closed one of them, about a timeout later.
	for range maxConns {
		holdConn(t, r.addr, "silent", nil)
	}
	time.Sleep(100 * time.Millisecond) // accepted, all of them
	start := time.Now()
	resp, err := http.Get("http://" + r.addr + "/healthz")
	if err != nil {
		t.Fatalf("a request once the slots were full: %v", err)
	}
	resp.Body.Close()
	waited := time.Since(start)
	t.Logf("a request beyond -max-conns %d waited %v", maxConns, waited.Round(time.Millisecond))
	if resp.StatusCode != 200 || waited < timeout/2 {
		t.Errorf("a request beyond -max-conns: %s after %v, want 200 once a held connection timed out (%v)", resp.Status, waited, timeout)
	}
}

// heldConn is a client's connection that sends prefix, then one byte every
// 100 ms of the rest of its payload, and reads whatever comes back until
// the server closes it.
type heldConn struct {
	name   string
	start  time.Time
	mu     sync.Mutex
	closed time.Duration // after start; 0 while open
	err    error
	done   chan struct{}
}

func holdConn(t *testing.T, addr, name string, payload []byte) *heldConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &heldConn{name: name, start: time.Now(), done: make(chan struct{})}
	// A request line in full, then the rest a byte at a time.
	first := len(payload)
	if i := strings.Index(string(payload), "\r\n"); i >= 0 && strings.Contains(name, "slow") {
		first = i + 2
		if strings.Contains(name, "body") {
			first = strings.Index(string(payload), "\r\n\r\n") + 4
		}
	}
	if _, err := conn.Write(payload[:first]); err != nil {
		t.Fatal(err)
	}
	go func() {
		for _, b := range payload[first:] {
			select {
			case <-h.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{b}); err != nil {
				return // closed by the server, seen by the reader
			}
		}
	}()
	go func() {
		defer close(h.done)
		answer, err := io.ReadAll(bufio.NewReader(conn)) // until the server closes it
		h.mu.Lock()
		defer h.mu.Unlock()
		h.closed = time.Since(h.start)
		var netErr net.Error
		if err != nil && !(errors.As(err, &netErr) || strings.Contains(err.Error(), "reset")) {
			h.err = err
		}
		if name == "idle after a request" && !strings.HasPrefix(string(answer), "HTTP/1.1 200 OK") {
			h.err = fmt.Errorf("the request before the idle wait was answered %.40q", answer)
		}
	}()
	return h
}

// closedAfter waits up to wait for the server to close the connection, and
// returns how long after its opening it did.
func (h *heldConn) closedAfter(wait time.Duration) (time.Duration, error) {
	select {
	case <-h.done:
	case <-time.After(wait):
		return 0, fmt.Errorf("still open %v after it was opened", time.Since(h.start).Round(time.Millisecond))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed, h.err
}
