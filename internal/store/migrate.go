package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// ErrSchemaTooNew: the database was migrated by a newer keyhaven than this
// binary; opening it could corrupt data the newer schema relies on.
var ErrSchemaTooNew = errors.New("store: database schema is newer than this binary supports")

// CheckSchemaVersion refuses a database at schema version current when
// this binary knows only versions up to known.
func CheckSchemaVersion(current, known int) error {
	if current > known {
		return fmt.Errorf("%w: database is at schema version %d, this binary knows up to %d; run a newer keyhaven",
			ErrSchemaTooNew, current, known)
	}
	return nil
}

// MigrationTarget is the version a migration to target (0 = all) of n
// known steps ends at.
func MigrationTarget(target, n int) int {
	if target == 0 || target > n {
		return n
	}
	return target
}

// Migration is one numbered schema step of a backend.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// maxMigrationFile bounds what LoadMigrations reads; schema steps are small.
const maxMigrationFile = 1 << 20

// LoadMigrations reads files named NNNN_name.sql from the root of fsys
// (normally an embed.FS sub-tree) and returns them ordered by version. The
// versions must run 1, 2, 3... without gaps or duplicates, so a typo in a
// file name fails loudly at startup rather than skipping a step.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".sql" {
			continue
		}
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		if !ok || rest == "" {
			return nil, fmt.Errorf("store: migration %q: want NNNN_name.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %q: bad version number", name)
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("store: migration %q: %w", name, err)
		}
		if info.Size() > maxMigrationFile {
			return nil, fmt.Errorf("store: migration %q: too large", name)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("store: migration %q: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: rest, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("store: migrations must be numbered 1..n without gaps; found %d at position %d", m.Version, i+1)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("store: no migrations found")
	}
	return out, nil
}
