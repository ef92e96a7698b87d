//go:build unix

package server

import (
	"strings"
	"testing"
)

func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	a, err := lockDataDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := lockDataDir(dir, false) // two servers (PostgreSQL replicas) may share a data directory
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if _, err := lockDataDir(dir, true); err == nil || !strings.Contains(err.Error(), "keyhaven serve is running") {
		t.Fatalf("exclusive lock while servers run: %v", err)
	}
	a()
	b()
	release, err := lockDataDir(dir, true)
	if err != nil {
		t.Fatalf("exclusive lock with no server: %v", err)
	}
	if _, err := lockDataDir(dir, false); err == nil || !strings.Contains(err.Error(), "a snapshot restore is replacing") {
		t.Fatalf("server start during a restore: %v", err)
	}
	release()
	if r, err := lockDataDir(dir, false); err != nil {
		t.Fatalf("server start after the restore: %v", err)
	} else {
		r()
	}
}
