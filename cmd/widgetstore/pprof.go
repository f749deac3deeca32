package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// checkPprofAddr refuses a -pprof-addr other machines reach: a profile
// shows the program's insides, and a CPU profile costs the server while it
// runs.
func checkPprofAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if exposed, err := exposed(addr); err != nil || exposed {
		return fmt.Errorf("-pprof-addr %s: must be a loopback address, such as 127.0.0.1:6060", addr)
	}
	return nil
}

// servePprof serves Go's profiles (net/http/pprof) on addr, a loopback
// address (checkPprofAddr); nowhere when addr is "", the default. The
// function it returns closes the listener.
func servePprof(addr string, logger *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go server.Serve(l)
	logger.Info("serving Go's profiles", "url", "http://"+l.Addr().String()+"/debug/pprof/")
	return func() { server.Close() }, nil
}
