//go:build !unix

package server

// lockDataDir is a no-op where flock(2) is not available; restore then
// relies on its listen-address and write-ahead-log checks alone.
func lockDataDir(dir string, exclusive bool) (release func(), err error) { return func() {}, nil }
