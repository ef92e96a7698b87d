package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
)

// Snapshot writes a consistent copy of the database file src to dst (a new
// file, mode 0600) while the database stays in use by any process: SQLite's
// VACUUM INTO reads one snapshot, so writes committed during the copy are
// not in it and none is torn. src is opened read-only and never migrated (a
// newer binary must not change the schema under an older running server).
func Snapshot(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("sqlite: snapshot: %w", err)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: snapshot: %w", err)
	}
	f.Close()
	fail := func(err error) error {
		os.Remove(dst)
		return fmt.Errorf("sqlite: snapshot: %w", err)
	}
	u := url.URL{Scheme: "file", Path: src, RawQuery: "mode=ro&_pragma=busy_timeout(10000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fail(err)
	}
	// VACUUM INTO does not sync the new file; a snapshot that a crash
	// could truncate is no backup.
	f, err = os.OpenFile(dst, os.O_RDWR, 0)
	if err == nil {
		err = errors.Join(f.Sync(), f.Close())
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// Check runs SQLite's integrity check on the database and reports the
// first problems it finds.
func (s *Store) Check(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, `PRAGMA integrity_check(20)`)
	if err != nil {
		return fmt.Errorf("sqlite: integrity check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("sqlite: integrity check: %w", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("sqlite: the database fails its integrity check: %v", problems)
	}
	return nil
}
