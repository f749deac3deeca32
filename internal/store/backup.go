package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// BackupSQLite writes a consistent copy of the SQLite database of url (a
// sqlite: URL) to file, which must not exist: one that does is an error
// and is left as it is. It may run while the shop serves, from another
// process: VACUUM INTO reads the database in one read transaction, a
// snapshot of every commit before it, and in WAL mode a reader holds up
// neither the shop's writers nor their commits (the shop's one-handle
// rule is about writers contending for the lock). The copy is written
// beside file under a temporary name, synced, and linked to file only
// when complete, so file is never half a database.
//
// On PostgreSQL this is not the tool: docs/operations-day-two.md says what
// is (pg_dump, or a base backup with WAL archiving).
func BackupSQLite(ctx context.Context, url, file string) (err error) {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		return errors.New("backup copies a SQLite database; back up PostgreSQL with pg_dump, or a base backup and WAL archiving (docs/operations-day-two.md)")
	}
	path, err := sqlitePath(url)
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("backing up %s: no database there: %w", path, err)
	}
	if _, err := os.Lstat(file); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backing up to %s: it exists already (or cannot be read: %v); name a new file", file, err)
	}
	partial := filepath.Join(filepath.Dir(file), "."+filepath.Base(file)+".partial-"+rand.Text())
	defer func() {
		if removeErr := os.Remove(partial); removeErr != nil && !errors.Is(removeErr, fs.ErrNotExist) {
			err = errors.Join(err, removeErr)
		}
	}()

	// A handle of its own: this runs in another process than the shop.
	// mode=ro: it writes nothing to the database itself.
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO $1`, partial); err != nil {
		return fmt.Errorf("copying %s: %w", path, err)
	}
	if err := syncFile(partial); err != nil {
		return err
	}
	// Link, unlike rename, refuses a file that appeared meanwhile.
	if err := os.Link(partial, file); err != nil {
		return fmt.Errorf("backing up to %s: %w", file, err)
	}
	return syncFile(filepath.Dir(file)) // the new name, in its directory
}

// syncFile flushes a file, or a directory's entries, to the disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return nil
}
