//go:build unix

package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockName is the file in the data directory every running server holds a
// shared lock on, and a snapshot restore an exclusive one: a restore cannot
// replace the database under a server, and a server cannot start during a
// restore. The kernel drops the lock when the process ends, crash or not.
const lockName = "serve.lock"

// lockDataDir takes the data directory's lock, shared (serve) or exclusive
// (restore), without waiting. release drops it.
func lockDataDir(dir string, exclusive bool) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if exclusive {
				return nil, fmt.Errorf("keyhaven serve is running on %s (it holds %s): stop it first", dir, lockName)
			}
			return nil, fmt.Errorf("a snapshot restore is replacing the database in %s (it holds %s): start the server when it is done", dir, lockName)
		}
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	return func() { f.Close() }, nil
}
