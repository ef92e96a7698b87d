package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

// Snapshots of the embedded store: `keyhaven admin snapshot save|verify|
// restore`. A snapshot is a consistent copy of the SQLite database taken
// while the server runs. Everything secret in it stays sealed, so it is
// only as useful as the root keyring kept with it: verify proves that the
// keyring opens every data key before anyone relies on the copy, and
// restore refuses a snapshot the keyring cannot read.

var errSnapshotPostgres = errors.New("the PostgreSQL store is backed up with PostgreSQL's own tools (pg_dump --schema <store schema>, or the cluster's backups); keep the root keyring with the backup")

func dbPath(cfg Config) string { return filepath.Join(cfg.DataDir, "keyhaven.db") }

// SnapshotSave is `keyhaven admin snapshot save`.
func SnapshotSave(ctx context.Context, cfg Config, out io.Writer, path string) error {
	if cfg.StoreDSN != "" {
		return errSnapshotPostgres
	}
	if err := sqlite.Snapshot(ctx, dbPath(cfg), path); err != nil {
		return err
	}
	sum, err := verifySnapshot(ctx, cfg, path)
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("the snapshot does not verify, so it was removed: %w", err)
	}
	fmt.Fprintf(out, "snapshot written to %s: %s\n", path, sum)
	fmt.Fprintf(out, "keep it with the root keyring (%s): without that keyring the snapshot cannot be read\n", keyringName(cfg))
	return nil
}

// SnapshotVerify is `keyhaven admin snapshot verify`.
func SnapshotVerify(ctx context.Context, cfg Config, out io.Writer, path string) error {
	sum, err := verifySnapshot(ctx, cfg, path)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "snapshot %s verifies: %s\n", path, sum)
	return nil
}

// SnapshotRestore is `keyhaven admin snapshot restore`: with the server
// stopped, it puts a verified copy of the snapshot in place of the data
// directory's database, keeping the database it replaces.
func SnapshotRestore(ctx context.Context, cfg Config, out io.Writer, path string) error {
	if cfg.StoreDSN != "" {
		return errSnapshotPostgres
	}
	unlock, err := lockDataDir(cfg.DataDir, true)
	if err != nil {
		return fmt.Errorf("not restoring: %w", err)
	}
	defer unlock()
	if err := checkStopped(cfg); err != nil {
		return fmt.Errorf("not restoring: %w", err)
	}
	// The copy that goes in place is the one verified.
	live := dbPath(cfg)
	tmp := live + ".restore-tmp"
	os.Remove(tmp) // a crashed restore's; the lock says no restore runs
	if err := copyFile(path, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("not restoring: %w", err)
	}
	sum, err := verifySnapshot(ctx, cfg, tmp)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("not restoring: %w", err)
	}
	kept := ""
	if _, err := os.Stat(live); err == nil {
		kept, err = keepAside(live)
		if err != nil {
			os.Remove(tmp)
			return fmt.Errorf("not restoring: keep the current database: %w", err)
		}
	}
	for _, side := range []string{"-wal", "-shm"} { // the replaced database's, empty after a clean stop
		os.Remove(live + side)
	}
	if err := os.Rename(tmp, live); err != nil {
		os.Remove(tmp)
		if kept != "" {
			if rerr := os.Rename(kept, live); rerr != nil {
				return fmt.Errorf("restore: %w; putting the previous database back failed too (%v): it is %s", err, rerr, kept)
			}
		}
		return fmt.Errorf("restore: %w (the previous database is back in place)", err)
	}
	if d, err := os.Open(cfg.DataDir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	fmt.Fprintf(out, "restored %s from %s: %s\n", live, path, sum)
	if kept != "" {
		fmt.Fprintf(out, "the database it replaced is kept as %s\n", kept)
	}
	return nil
}

// keepAside renames the database to a new name beside it, never over
// another kept database.
func keepAside(live string) (string, error) {
	base := live + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
	for i := 0; i < 100; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			return name, os.Rename(live, name)
		}
	}
	return "", fmt.Errorf("too many kept databases named %s*", base)
}

// verifySnapshot checks a snapshot on a private copy (opening it may
// migrate it, and a backup is never changed): SQLite's integrity check, and
// every data key opens with the keyring. It returns a summary.
func verifySnapshot(ctx context.Context, cfg Config, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "keyhaven-verify-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	work := filepath.Join(dir, "snapshot.db")
	if err := copyFile(path, work); err != nil {
		return "", err
	}
	st, err := sqlite.Open(ctx, work)
	if err != nil {
		return "", fmt.Errorf("%s is not a keyhaven database: %w", path, err)
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		return "", err
	}
	n, err := countRecords(ctx, st)
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", fmt.Errorf("%s holds no keyhaven records", path)
	}
	root, err := loadRoot(cfg)
	if err != nil {
		return "", err
	}
	rep, err := seal.NewEnvelope(st, root).Verify(ctx)
	if err != nil {
		if len(rep.Failures) > 0 {
			return "", fmt.Errorf("%w; first: %s", err, rep.Failures[0])
		}
		return "", err
	}
	return fmt.Sprintf("%d bytes, %d records, %d data keys, all opened by root key versions %v", fi.Size(), n, rep.DataKeys, rep.RootVersions), nil
}

func countRecords(ctx context.Context, st store.Store) (int, error) {
	n, after := 0, ""
	for {
		recs, err := st.List(ctx, "", store.ListOptions{After: after, Limit: 1000})
		if err != nil {
			return n, err
		}
		n += len(recs)
		if len(recs) < 1000 {
			return n, nil
		}
		after = recs[len(recs)-1].Key
	}
}

// loadRoot loads the keyring without creating one (unlike serve): a
// verification with a fresh key would only say that nothing opens.
func loadRoot(cfg Config) (*seal.Root, error) {
	if cfg.RootKeyEnv != "" {
		if root, ok, err := seal.RootFromEnv(); err != nil || ok {
			return root, err
		}
	}
	if _, err := os.Stat(cfg.RootKeyFile); err != nil {
		return nil, fmt.Errorf("no root keyring at %s (give --root-key-file, or KEYHAVEN_ROOT_KEY): %w", cfg.RootKeyFile, err)
	}
	root, _, err := seal.LoadOrCreateRoot(cfg.RootKeyFile)
	return root, err
}

func keyringName(cfg Config) string {
	if cfg.RootKeyEnv != "" {
		return "KEYHAVEN_ROOT_KEY"
	}
	return cfg.RootKeyFile
}

// checkStopped refuses while a server may be using the data directory:
// something answers on its listen address, or its database has a write-ahead
// log (a running server's, or one that did not stop cleanly: start and stop
// it once so the log is folded in).
func checkStopped(cfg Config) error {
	if c, err := net.DialTimeout("tcp", cfg.Listen, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("something listens on %s: stop keyhaven serve first", cfg.Listen)
	}
	if fi, err := os.Stat(dbPath(cfg) + "-wal"); err == nil && fi.Size() > 0 {
		return fmt.Errorf("%s-wal is not empty: keyhaven serve is running on this data directory, or did not stop cleanly (start and stop it once)", dbPath(cfg))
	}
	return nil
}

// copyFile copies src to a new file dst (mode 0600) and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return errors.Join(out.Sync(), out.Close())
}
