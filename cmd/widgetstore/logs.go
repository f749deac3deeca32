package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// logConfig is how the shop logs: text for a person, JSON for a log
// collector, and from which level.
type logConfig struct {
	format string
	level  slog.Level
}

func (c *logConfig) settings() []setting {
	return []setting{
		{flag: "log-format", value: value(&c.format, "text"), usage: "log lines as text (key=value) or json; with json every line the process writes is JSON"},
		{flag: "log-level", value: value(&c.level, slog.LevelInfo), usage: "least level logged: debug (one line per request), info, warn or error"},
	}
}

func (c logConfig) check() error {
	if c.format != "text" && c.format != "json" {
		return fmt.Errorf("-log-format %q: want text or json", c.format)
	}
	return nil
}

// logger logs to w as configured.
func (c logConfig) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.level}
	if c.format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// listenLine starts the line on stdout that says where the server listens,
// which the tests, the load generator and scripts wait for.
const listenLine = "widgetstore listening on "

// announce writes the listen line to stdout: as it is, or under -log-format
// json as the message of a JSON record (with the address as "addr").
func (c logConfig) announce(stdout io.Writer, addr net.Addr) {
	if c.format == "json" {
		c.logger(stdout).Info(listenLine+addr.String(), "addr", addr.String())
		return
	}
	fmt.Fprintf(stdout, "%s%s\n", listenLine, addr)
}

// errLogged is returned by run for an error it logged already: main only
// exits with 1 for it.
var errLogged = errors.New("logged")

// jsonLines passes on, to w, the JSON lines written to it, and wraps every
// other line in a JSON record of its own at level: under -log-format json,
// the supervisor writes the server's output through it, so that what the
// server writes outside its logger (a Go panic's trace, say) is JSON too.
// Blank lines are dropped.
type jsonLines struct {
	w       io.Writer
	level   slog.Level
	mu      sync.Mutex
	partial []byte // the line written so far, without its end
}

// wrappedLine is the record of a line that was not JSON, in slog's fields.
type wrappedLine struct {
	Time   time.Time `json:"time"`
	Level  string    `json:"level"`
	Msg    string    `json:"msg"`
	Source string    `json:"source"`
}

func (j *jsonLines) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.partial = append(j.partial, p...)
	for {
		end := bytes.IndexByte(j.partial, '\n')
		if end < 0 {
			return len(p), nil
		}
		line := j.partial[:end]
		j.partial = j.partial[end+1:]
		if err := j.writeLine(line); err != nil {
			return len(p), err
		}
	}
}

// Flush writes what is left of a last line without its end (a process
// killed mid-line).
func (j *jsonLines) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	line := j.partial
	j.partial = nil
	return j.writeLine(line)
}

func (j *jsonLines) writeLine(line []byte) error {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	if line[0] != '{' || !json.Valid(line) {
		var err error
		if line, err = json.Marshal(wrappedLine{Time: time.Now(), Level: j.level.String(), Msg: string(line), Source: "server output"}); err != nil {
			return err
		}
	}
	_, err := j.w.Write(append(line[:len(line):len(line)], '\n'))
	return err
}
