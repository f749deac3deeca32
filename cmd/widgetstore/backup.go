package main

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/widgetstore/widgetstore/internal/store"
)

// backupUsage is how the backup command is called.
const backupUsage = "usage: widgetstore backup [flags] FILE: a consistent copy of the SQLite database, found as the server finds it (-db, DATABASE_URL, the default file), written to FILE, a new file"

// backup runs "widgetstore backup [flags] FILE": the flags (and their
// environment twins) are the server's, so the copy is of the database the
// server of the same command line and environment serves.
func backup(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[len(args)-1], "-") {
		return errors.New(backupUsage)
	}
	file := args[len(args)-1]
	cfg, err := parseConfig(args[:len(args)-1], getenv, stderr)
	if err != nil {
		return err
	}
	logger := cfg.log.logger(stderr)
	if err := store.BackupSQLite(ctx, cfg.databaseURL, file); err != nil {
		if cfg.log.format == "json" {
			logger.Error("backup failed", "file", file, "error", err.Error())
			return errLogged
		}
		return err
	}
	logger.Info("backed up the database", "database", strings.TrimPrefix(cfg.databaseURL, "sqlite:"), "file", file)
	return nil
}
