package main

import (
	"fmt"
	"io"
	"log/slog"
)

// logConfig is how the shop logs: text for a person, JSON for a log
// collector, and from which level.
type logConfig struct {
	format string
	level  slog.Level
}

func (c *logConfig) settings() []setting {
	return []setting{
		{flag: "log-format", value: value(&c.format, "text"), usage: "log lines as text (key=value) or json"},
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
