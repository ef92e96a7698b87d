package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Snapshot writes a consistent copy of the database to path (a new file,
// mode 0600) while the store stays in use: SQLite's VACUUM INTO reads one
// snapshot of the database, so writes committed during the copy are simply
// not in it. It runs on the writer connection, so writes wait for it.
func (s *Store) Snapshot(ctx context.Context, path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: snapshot: %w", err)
	}
	f.Close()
	if _, err := s.w.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("sqlite: snapshot: %w", err)
	}
	// VACUUM INTO does not sync the new file; a snapshot that a crash
	// could truncate is no backup.
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	if err == nil {
		err = errors.Join(f.Sync(), f.Close())
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("sqlite: snapshot: %w", err)
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
