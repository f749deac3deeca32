package main

import (
	"errors"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// httpConfig bounds what a client may hold of the server: how long it may
// take to send a request or keep an idle connection, and how many
// connections are served at once.
type httpConfig struct {
	readTimeout  time.Duration // the request's headers and body
	writeTimeout time.Duration // from the headers read to the answer sent
	idleTimeout  time.Duration // a kept-alive connection between requests
	maxConns     int
	// drain is how long /readyz answers 503 before the server stops at a
	// shutdown, serving all the while: long enough for a load balancer's
	// probes to take the instance out of rotation.
	drain time.Duration
}

// A checkout waits up to 30 s for its workflow to place the order (the
// payment webhook waits for no workflow): the write timeout leaves that
// wait twice the room.
const (
	defaultReadTimeout  = 10 * time.Second
	defaultWriteTimeout = 60 * time.Second
	defaultIdleTimeout  = 60 * time.Second
	defaultMaxConns     = 1024
)

func (c *httpConfig) settings() []setting {
	return []setting{
		{flag: "read-timeout", value: value(&c.readTimeout, defaultReadTimeout),
			usage: "longest a client may take to send a request, headers and body"},
		{flag: "write-timeout", value: value(&c.writeTimeout, defaultWriteTimeout),
			usage: "longest from a request's headers to its answer sent (a checkout may wait 30 s for its workflow)"},
		{flag: "idle-timeout", value: value(&c.idleTimeout, defaultIdleTimeout),
			usage: "how long a kept-alive connection may wait for its next request"},
		{flag: "max-conns", value: value(&c.maxConns, defaultMaxConns),
			usage: "most connections served at once; more wait in the kernel's queue"},
		{flag: "drain", value: value(&c.drain, 0),
			usage: "at a shutdown, how long /readyz answers 503 while the server still serves, before it stops (behind a load balancer: its probes' period times their failure threshold)"},
	}
}

func (c httpConfig) check() error {
	if c.readTimeout <= 0 || c.writeTimeout <= 0 || c.idleTimeout <= 0 || c.maxConns <= 0 {
		return errors.New("-read-timeout, -write-timeout, -idle-timeout and -max-conns must be positive")
	}
	if c.drain < 0 {
		return errors.New("-drain must be 0 or more")
	}
	return nil
}

// server is an HTTP server of h with the timeouts.
func (c httpConfig) server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.readTimeout,
		ReadTimeout:       c.readTimeout,
		WriteTimeout:      c.writeTimeout,
		IdleTimeout:       c.idleTimeout,
	}
}

// listen listens on addr for at most maxConns connections at once.
func (c httpConfig) listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	// Accept waits for a connection to close, and the connections beyond
	// wait in the kernel's listen queue.
	return netutil.LimitListener(l, c.maxConns), nil
}
